import pytest
import torch
from torch import nn

from ppt.models import DAPT
from ppt.models.adapters import BottleneckAdapter
from ppt.models.point_transformer import scaled_layer_norm, scaled_linear

TINY = dict(num_groups=8, group_size=8, depth=2, dim=48, heads=3)


def _official_rule(name):
    """DAPT's optimizer setup trains exactly the parameters whose names contain these."""
    return "cls" in name or "tfts" in name or "Adapter" in name


def test_trainable_parameters_of_the_pb_t50_rs_config():
    model = DAPT(num_classes=15, rank=64)
    count = model.parameter_count()
    assert count.trainable == 1_087_771
    assert count.total - count.trainable == 22_093_327 - 267_535 - 768  # the frozen Point-MAE backbone
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == _official_rule(name), name


@pytest.mark.parametrize("head_features", [("cls", "prompt_mean", "patch_max"), ("cls", "prompt_mean"),
                                           ("cls", "patch_max"), ("prompt_max", "patch_mean", "cls")])
def test_forward_shapes(head_features):
    model = DAPT(num_classes=7, rank=4, head_features=head_features, **TINY)
    points = torch.randn(3, 64, 3)
    assert model(points).shape == (3, 7)
    assert model.cls_head_finetune[0].in_features == 48 * len(head_features)
    # cls, one Internal Prompt per block, the 8 patch tokens
    assert model.forward_features(points).shape == (3, 1 + 2 + 8, 48)


def test_head_reads_the_named_features():
    model = DAPT(num_classes=3, rank=4, head_features=("prompt_max", "cls"), **TINY).eval()
    points = torch.randn(2, 64, 3)
    tokens = model.forward_features(points)
    expected = model.cls_head_finetune(torch.cat([tokens[:, 1:3].amax(dim=1), tokens[:, 0]], dim=-1))
    assert torch.allclose(model(points), expected)


def test_zero_init_adapters_leave_features_unchanged():
    model = DAPT(num_classes=5, rank=4, adapter_dropout=0.0, **TINY).eval()
    tokens = torch.randn(2, 9, 48)
    for block in model.blocks.blocks:
        assert torch.count_nonzero(block.Adapter_MLP(tokens)) == 0
    points = torch.randn(2, 64, 3)
    with_adapters = model.forward_features(points)
    for block in model.blocks.blocks:  # the same network without the adapter branch
        block.Adapter_MLP.forward = torch.zeros_like
    assert torch.equal(model.forward_features(points), with_adapters)


def test_first_step_trains_the_adapter_output_side():
    model = DAPT(num_classes=5, rank=4, **TINY)
    model(torch.randn(4, 64, 3)).logsumexp(dim=1).sum().backward()
    adapter = model.blocks.blocks[0].Adapter_MLP
    # With a zero up projection, only it (and its bias) get a gradient at step 0, as in DAPT/AdaptFormer.
    assert adapter.up_proj.weight.grad.abs().sum() > 0 and adapter.up_proj.bias.grad.abs().sum() > 0
    assert torch.count_nonzero(adapter.down_proj.weight.grad) == 0
    assert model.blocks.blocks[0].attn.qkv.weight.grad is None  # frozen


def test_dynamic_adapter_structure():
    adapter = BottleneckAdapter(16, 4, dropout=0.0, layer_norm=True, dynamic_scale=True)
    torch.nn.init.normal_(adapter.up_proj.weight)
    x = torch.randn(2, 5, 16)
    normed = adapter.adapter_layer_norm_before(x)
    expected = adapter.up_proj(torch.nn.functional.gelu(adapter.down_proj(normed)))
    expected = expected * torch.relu(adapter.scale(normed))  # one scale per token
    assert torch.allclose(adapter(x), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="head_features must be distinct names"):
        DAPT(head_features=("cls", "patch_min"), **TINY)
    with pytest.raises(ValueError, match="head_features must be distinct names"):
        DAPT(head_features=(), **TINY)
    with pytest.raises(ValueError, match="adapter rank must be >= 1"):
        DAPT(rank=0, **TINY)


@pytest.mark.parametrize("bias", [True, False])
def test_folded_scale_shift_equals_the_product_form(bias):
    # DAPT's scale/shift is folded into the preceding layer's affine (it keeps less for backward);
    # values and every gradient must equal `layer(x) * scale + shift`.
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    linear = nn.Linear(8, 12, bias=bias).double()
    norm = nn.LayerNorm(8).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.normal_()
    for layer, folded, width in ((linear, scaled_linear, 12), (norm, scaled_layer_norm, 8)):
        scale = torch.randn(width, dtype=torch.float64, requires_grad=True)
        shift = torch.randn(width, dtype=torch.float64, requires_grad=True)
        inputs = [x, scale, shift, *layer.parameters()]
        out = folded(x, layer, scale, shift)
        expected = layer(x) * scale + shift
        torch.testing.assert_close(out, expected)
        weights = torch.randn_like(out)
        got = torch.autograd.grad((out * weights).sum(), inputs)
        want = torch.autograd.grad((expected * weights).sum(), inputs)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)
