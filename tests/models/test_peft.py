import pytest
import torch

from ppt.models import DAPT, PEFT_METHODS, PointMAE, count_parameters, create_object_classifier
from ppt.models.peft import is_trainable

TINY = dict(num_groups=8, group_size=8, depth=2, dim=48, heads=3)
POINT_MAE_METHODS = [m for m in PEFT_METHODS if m != "dapt"]


def _model(peft, **kwargs):
    return create_object_classifier(peft, num_classes=4, rank=4, prompt_tokens=3, **TINY, **kwargs)


def _trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_trainable_sets_follow_the_rules():
    names = {method: _trainable_names(_model(method)) for method in PEFT_METHODS}
    head = {n for n in names["full"] if n.startswith("cls_head_finetune.")}
    tokens = {"cls_token", "cls_pos"}
    assert names["linear"] == head
    assert names["bitfit"] == head | tokens | {n for n in names["full"] if n.endswith(".bias")}
    assert names["lora"] == head | tokens | {f"blocks.blocks.{i}.attn.lora.lora_{s}.weight" for i in range(2)
                                             for s in ("down", "up")}
    assert names["adaptformer"] == head | tokens | {f"blocks.blocks.{i}.adapter.{p}_proj.{t}" for i in range(2)
                                                    for p in ("down", "up") for t in ("weight", "bias")}
    assert names["vpt_deep"] == head | tokens | {"blocks.prompt_tokens"}
    assert isinstance(_model("dapt"), DAPT) and all(isinstance(_model(m), PointMAE) for m in POINT_MAE_METHODS)
    assert len(names["full"]) == sum(1 for _ in _model("full").parameters())
    with pytest.raises(ValueError, match="peft must be one of"):
        _model("prefix")
    with pytest.raises(ValueError, match="DAPT is ppt.models.DAPT"):
        PointMAE(peft="dapt", **TINY)
    with pytest.raises(ValueError, match="peft_rank applies to"):
        PointMAE(peft="bitfit", peft_rank=4, **TINY)
    with pytest.raises(ValueError, match="peft method must be one of"):
        is_trainable("adapter", "cls_token")


def test_parameter_report():
    model = _model("lora")
    count = count_parameters(model)
    assert count == model.parameter_count()
    assert count.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert count.total == sum(p.numel() for p in model.parameters())
    assert str(count) == f"trainable parameters: {count.trainable:,} of {count.total:,} " \
                         f"({100 * count.trainable / count.total:.2f}%)"


@pytest.mark.parametrize("method", PEFT_METHODS)
def test_frozen_parameters_get_no_gradient_and_do_not_change(method):
    model = _model(method)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.05)
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(4, 64, 3)), torch.tensor([0, 1, 2, 3])).backward()
        for name, p in model.named_parameters():
            assert (p.grad is None) == (not p.requires_grad), name
        optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == _trainable_names(model)


@pytest.mark.parametrize("method", ["lora", "adaptformer"])
def test_zero_init_methods_leave_the_pretrained_model_unchanged(method):
    pretrained = _model("full").eval()
    model = _model(method).eval()
    result = model.load_state_dict(pretrained.state_dict(), strict=False)
    assert not result.unexpected_keys and all(("lora" in k) or ("adapter" in k) for k in result.missing_keys)
    points = torch.randn(2, 64, 3)
    assert torch.allclose(model.forward_features(points), pretrained.forward_features(points), atol=1e-6)
    assert torch.allclose(model(points), pretrained(points), atol=1e-6)


def _encoder_bn(model):
    return model.encoder.first_conv[1]


@pytest.mark.parametrize("method", ["dapt", "linear"])
def test_frozen_batchnorm_statistics(method):
    points = torch.randn(4, 64, 3)
    # Official behaviour: frozen BatchNorm layers keep updating their running statistics in training.
    model = _model(method).train()
    before = _encoder_bn(model).running_mean.clone()
    model(points)
    assert not torch.equal(_encoder_bn(model).running_mean, before)
    # frozen_norm_stats=True: frozen BatchNorm layers stay in eval mode; the trainable head's do not.
    model = _model(method, frozen_norm_stats=True).train()
    state = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("encoder.")}
    head_before = model.cls_head_finetune[1].running_mean.clone()
    model(points)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert not _encoder_bn(model).training and model.cls_head_finetune[1].training
    assert not torch.equal(model.cls_head_finetune[1].running_mean, head_before)
    # Full fine-tuning has no frozen BatchNorm: the option changes nothing there.
    assert _model("full", frozen_norm_stats=True).train().encoder.first_conv[1].training
