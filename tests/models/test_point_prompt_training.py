"""PointPromptTraining: restricted losses, zero-init equivalence, mixed == separate batches,
parameter groups, checkpoints (ppt and Pointcept PPT-v1m1 + SpUNet-v1m3 layouts), bad input."""

import copy
import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from ppt.data import S3DIS_CLASSES, SCANNET_CLASSES, STRUCTURED3D_CLASSES
from ppt.models import PointPromptTraining, load_weights, restricted_cross_entropy
from ppt.models.point_prompt_training import (POINTCEPT_BACKBONE_CONDITIONS, POINTCEPT_CLASS_NAMES,
                                              POINTCEPT_PROMPT_CONDITIONS)
from ppt.nn import PDNorm
from ppt.sparse import SparseTensor
from ppt.text import TextTable

pytestmark = pytest.mark.usefixtures("single_thread")

CONDITIONS = ("Structured3D", "ScanNet", "S3DIS")
CLASS_NAMES = {"Structured3D": STRUCTURED3D_CLASSES, "ScanNet": SCANNET_CLASSES, "S3DIS": S3DIS_CLASSES}
UNION = tuple(dict.fromkeys(name for names in CLASS_NAMES.values() for name in names))
SMALL = dict(base_channels=4, channels=(4, 8, 8, 8, 8, 8, 4, 4), layers=(1, 1, 1, 1, 1, 1, 1, 1), context_channels=8)
TEXT_DIM = 16


def _text(seed=0, dim=TEXT_DIM, names=UNION):
    generator = torch.Generator().manual_seed(seed)
    return TextTable(F.normalize(torch.randn(len(names), dim, generator=generator), dim=1), names, {"provider": "test"})


def _model(**kwargs):
    options = dict(class_names=CLASS_NAMES, text=_text(), **SMALL)
    options.update(kwargs)
    return PointPromptTraining(**options)


def _scene_sites(scene, seed, extent=20, points=1200):
    generator = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, extent, (points, 3), generator=generator), dim=0)
    return torch.cat([torch.full((len(coords), 1), scene), coords], 1).int()


def _features(rows, seed):
    return torch.randn(rows, 6, generator=torch.Generator().manual_seed(seed))


# ---- losses


def test_restricted_cross_entropy_hand_checked():
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0]], requires_grad=True)
    target = torch.tensor([2, 0])
    allowed = torch.tensor([[True, False, True, False], [True, True, False, False]])
    loss = restricted_cross_entropy(logits, target, allowed)
    # point 0: softmax over classes {0, 2}: -log(e^3 / (e^1 + e^3)) = log(1 + e^-2)
    # point 1: softmax over classes {0, 1}: -log(e^0.5 / (e^0.5 + e^0)) = log(1 + e^-0.5)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-0.5))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[~allowed] == 0)  # other datasets' classes get no gradient
    # One dataset for every point: a (C,) mask; ignored points leave the mean.
    shared = restricted_cross_entropy(logits.detach(), torch.tensor([2, -1]), torch.tensor([True, False, True, False]))
    assert shared.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    none_labelled = restricted_cross_entropy(logits, torch.tensor([-1, -1]), allowed)
    assert none_labelled.item() == 0.0 and none_labelled.requires_grad


def test_restricted_cross_entropy_rejects_foreign_targets():
    logits = torch.zeros(2, 4)
    allowed = torch.tensor([True, False, True, False])
    with pytest.raises(ValueError, match="not among its dataset's classes"):
        restricted_cross_entropy(logits, torch.tensor([1, 0]), allowed)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 4\)"):
        restricted_cross_entropy(logits, torch.tensor([4, 0]), allowed)
    with pytest.raises(ValueError, match="allowed must be bool"):
        restricted_cross_entropy(logits, torch.tensor([0, 0]), torch.ones(3, dtype=torch.bool))


@pytest.mark.parametrize("head", ["lang", "unionized", "decoupled"])
def test_model_loss_is_each_dataset_cross_entropy(head):
    model = _model(head=head).train()
    sites = torch.cat([_scene_sites(0, 1), _scene_sites(1, 2)])
    x = SparseTensor(_features(len(sites), 3), sites, batch_size=2)
    condition = torch.where(sites[:, 0] == 0, 1, 2).long()  # scene 0 ScanNet (20 classes), scene 1 S3DIS (13)
    generator = torch.Generator().manual_seed(4)
    segment = torch.where(condition == 1, torch.randint(0, 20, condition.shape, generator=generator),
                          torch.randint(0, 13, condition.shape, generator=generator))
    segment[::7] = -1
    logits = model(x, condition)
    assert logits.shape == (len(sites), 25)
    assert torch.isinf(logits[condition == 1, 20:]).all() and torch.isinf(logits[condition == 2, 13:]).all()
    expected = sum(F.cross_entropy(logits[condition == c, :k], segment[condition == c], ignore_index=-1,
                                   reduction="sum") for c, k in ((1, 20), (2, 13))) / (segment != -1).sum()
    torch.testing.assert_close(model.loss(logits, segment, condition), expected)


# ---- zero init


def _plain_into(prompted, plain):
    """Copy the prompt-free model's weights into ``prompted`` (PDNorm rows all equal to the BN's)."""
    state = prompted.state_dict()
    for key, value in plain.state_dict().items():
        target = state[key]
        state[key] = value.expand_as(target).clone() if target.dim() == value.dim() + 1 else value
    prompted.load_state_dict(state)


@pytest.mark.parametrize("adapter", ["pdnorm", "add", "cross_attn"])
def test_zero_init_prompts_leave_the_plain_model_output(adapter):
    plain = _model(adapter="none")
    prompted = _model(adapter=adapter, zero_init=True)
    _plain_into(prompted, plain)
    sites = torch.cat([_scene_sites(0, 5), _scene_sites(1, 6)])
    x = SparseTensor(_features(len(sites), 7), sites, batch_size=2)
    for mode in ("eval", "train"):  # eval first: training forwards update the running statistics
        getattr(plain, mode)(), getattr(prompted, mode)()
        for condition in CONDITIONS:  # logits are cosines x 100: 1e-3 is float rounding of the norms
            torch.testing.assert_close(prompted(x, condition), plain(x, condition), rtol=1e-4, atol=1e-3)
    # Without zero init the prompts change the output from the start (the test can fail).
    changed = _model(adapter=adapter, zero_init=False)
    _plain_into(changed, plain)
    changed.eval(), plain.eval()
    assert not torch.allclose(changed(x, "ScanNet"), plain(x, "ScanNet"), atol=1e-4)


# ---- mixed batches


def _separate_scenes(sites, features):
    for scene in range(2):
        rows = sites[:, 0] == scene
        local = sites[rows].clone()
        local[:, 0] = 0
        yield rows, SparseTensor(features[rows], local, batch_size=1)


@pytest.mark.parametrize("head", ["lang", "unionized", "decoupled"])
def test_mixed_batch_equals_separate_batches(head):
    """PDNorm in training mode: a batch of a Structured3D and an S3DIS scene with per-point
    condition ids gives the logits, loss gradients and running statistics of the two scenes run
    alone as single-dataset batches."""
    model = _model(head=head, zero_init=False).train()
    separate = copy.deepcopy(model)
    sites = torch.cat([_scene_sites(0, 8), _scene_sites(1, 9)])
    features = _features(len(sites), 10)
    condition = torch.where(sites[:, 0] == 0, 0, 2).long()
    segment = torch.randint(0, 13, (len(sites),), generator=torch.Generator().manual_seed(11))

    mixed_logits = model(SparseTensor(features, sites, batch_size=2), condition)
    model.loss(mixed_logits, segment, condition).backward()

    total = 0
    for (rows, x), name in zip(_separate_scenes(sites, features), ("Structured3D", "S3DIS")):
        logits = separate(x, name)
        # The two runs' float32 features differ by rounding (~4e-6: batch statistics reduced in
        # different orders); the lang head multiplies cosines by logit_scale = 100.
        torch.testing.assert_close(mixed_logits[rows, :logits.shape[1]], logits, rtol=1e-4, atol=1e-3)
        total = total + separate.loss(logits, segment[rows], name) * rows.sum()
    (total / len(sites)).backward()

    for (name, a), b in zip(model.named_parameters(), separate.parameters()):
        # A decoupled head of a dataset absent from the batch: zero gradient vs never used (None).
        expected = b.grad if b.grad is not None else torch.zeros_like(b)
        torch.testing.assert_close(a.grad, expected, rtol=1e-3, atol=1e-4, msg=lambda m: f"{name}: {m}")
    for (name, a), b in zip(model.named_buffers(), separate.buffers()):
        torch.testing.assert_close(a, b, msg=lambda m: f"{name}: {m}")


def _normalised_projection_logits(model, features, text):
    """The lang head as Pointcept writes it: F.normalize(proj_head(f)) @ text.T x scale."""
    return F.normalize(model.proj_head(features), dim=-1) @ text.to(features.dtype).t() * model.logit_scale.exp()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lang_head_equals_the_normalised_projection(dtype):
    # The head never forms the (N, D) projection; its logits and every gradient must still be
    # those of normalising it (float64: to rounding; float32: to float32's).
    model = _model(zero_init=False).to(dtype)
    with torch.no_grad():
        model.proj_head.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    features = torch.randn(500, model.backbone.out_channels, dtype=dtype, generator=torch.Generator().manual_seed(4))
    features[0] = 0  # |u| = |b| for a zero feature row
    tolerance = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-4)
    got_features = features.clone().requires_grad_()
    ref_features = features.clone().requires_grad_()
    got = model._text_logits(got_features, model.class_embedding)
    grad_out = torch.randn(got.shape, dtype=dtype, generator=torch.Generator().manual_seed(5))
    got_grads = torch.autograd.grad(got, [got_features, model.proj_head.weight, model.proj_head.bias], grad_out)
    expected = _normalised_projection_logits(model, ref_features, model.class_embedding)
    expected_grads = torch.autograd.grad(expected, [ref_features, model.proj_head.weight, model.proj_head.bias],
                                         grad_out)
    torch.testing.assert_close(got, expected, **tolerance)
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        torch.testing.assert_close(got_grad, expected_grad, **tolerance)


def test_lang_head_under_bfloat16_autocast_stays_close_to_float32():
    model = _model(zero_init=False)
    features = torch.randn(300, model.backbone.out_channels, generator=torch.Generator().manual_seed(6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model._text_logits(features, model.class_embedding)
    expected = _normalised_projection_logits(model, features, model.class_embedding)
    assert got.dtype == torch.bfloat16
    # |logits| <= logit_scale = 100; bfloat16 keeps 8 bits
    torch.testing.assert_close(got.float(), expected, rtol=0.02, atol=1.0)


@pytest.mark.parametrize("adapter", ["add", "cross_attn", "none"])
def test_mixed_batch_equals_separate_batches_in_eval(adapter):
    model = _model(adapter=adapter, zero_init=False).eval()
    sites = torch.cat([_scene_sites(0, 12), _scene_sites(1, 13)])
    features = _features(len(sites), 14)
    condition = torch.where(sites[:, 0] == 0, 1, 0).long()
    mixed = model(SparseTensor(features, sites, batch_size=2), condition)
    for (rows, x), name in zip(_separate_scenes(sites, features), ("ScanNet", "Structured3D")):
        logits = model(x, name)
        torch.testing.assert_close(mixed[rows, :logits.shape[1]], logits, rtol=1e-4, atol=1e-4)


def test_a_scene_must_have_one_condition():
    model = _model()
    sites = _scene_sites(0, 15)
    condition = torch.zeros(len(sites), dtype=torch.long)
    condition[0] = 1
    with pytest.raises(ValueError, match="all points of a scene must share one condition"):
        model(SparseTensor(_features(len(sites), 0), sites, batch_size=1), condition)


# ---- parameters


def test_parameter_count_matches_pointcept():
    """Pointcept's PPT-v1m1 + SpUNet-v1m3 (3 conditions, CLIP 512-d) holds 43,648,705 parameters,
    one of them the frozen CLIP logit scale (a buffer here): 43,648,704 trainable."""
    model = PointPromptTraining(class_names=CLASS_NAMES, text=_text(dim=512), zero_init=False)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 43_648_705 - 1
    assert model.logit_scale.exp().item() == pytest.approx(100.0)


def test_parameter_groups_scale_the_prompt_parts():
    model = _model(adapter="pdnorm", prompt_lr_scale=0.1)
    groups = {group["name"]: group for group in model.parameter_groups()}
    names = set(model.prompt_parameter_names())
    assert "embedding_table.weight" in names
    assert "backbone.conv_input.bn.modulation.1.weight" in names
    assert "backbone.conv_input.bn.weight" not in names and "proj_head.weight" not in names
    assert groups["prompt"]["lr_scale"] == 0.1 and groups["base"]["lr_scale"] == 1.0
    assert len(groups["prompt"]["params"]) == len(names)
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    adapters = _model(adapter="cross_attn")
    assert any(name.startswith("adapters.enc_0_block0.") for name in adapters.prompt_parameter_names())
    assert _model(adapter="none").prompt_parameter_names() == []


def test_backbone_mode_returns_features():
    model = _model(backbone_mode=True, class_names=None, text=None)
    sites = _scene_sites(0, 16)
    x = SparseTensor(_features(len(sites), 17), sites, batch_size=1)
    features = model(x, "ScanNet")
    assert features.shape == (len(sites), SMALL["channels"][-1])
    torch.testing.assert_close(features, model.forward_features(x, "ScanNet"))
    assert not hasattr(model, "proj_head")


# ---- checkpoints


@pytest.mark.parametrize("adapter", ["pdnorm", "add", "cross_attn"])
def test_checkpoint_round_trip(tmp_path, adapter):
    source = _model(adapter=adapter, zero_init=False).eval()
    path = tmp_path / "ppt.safetensors"
    save_file(source.state_dict(), str(path))
    target = _model(adapter=adapter, zero_init=False, text=_text(seed=1)).eval()
    report = load_weights(target, path)
    assert (report.missing, report.unexpected) == ((), ())
    torch.testing.assert_close(target.class_embedding, source.class_embedding)  # the text table travels too
    sites = _scene_sites(0, 18)
    x = SparseTensor(_features(len(sites), 19), sites, batch_size=1)
    torch.testing.assert_close(target(x, "S3DIS"), source(x, "S3DIS"), rtol=0, atol=0)
    assert source.checkpoint_metadata()["text"] == {"provider": "test"}


class _OfficialPDBatchNorm(nn.Module):
    """Pointcept's PDBatchNorm parameter names (decouple, adaptive, affine)."""

    def __init__(self, channels, conditions, context_channels):
        super().__init__()
        self.bns = nn.ModuleList(nn.BatchNorm1d(channels) for _ in conditions)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(context_channels, 2 * channels))


class _OfficialConv(nn.Module):
    """An spconv 2.x convolution's parameters: weight (out, k, k, k, in), optional bias."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, kernel_size, kernel_size, kernel_size, in_channels))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))


def _official_conv_norm(in_channels, out_channels, kernel_size, norm):
    module = nn.Module()
    module.conv, module.bn = _OfficialConv(in_channels, out_channels, kernel_size), norm(out_channels)
    return module


def _official_block(in_channels, channels, norm):
    block = nn.Module()
    if in_channels != channels:
        block.proj_conv, block.proj_norm = _OfficialConv(in_channels, channels, 1), norm(channels)
    block.conv1, block.bn1 = _OfficialConv(in_channels, channels, 3), norm(channels)
    block.conv2, block.bn2 = _OfficialConv(channels, channels, 3), norm(channels)
    return block


def _official_ppt_v1m1(conditions, backbone_conditions, base_channels, channels, layers, context_channels, text_dim,
                       decoupled_classes=None):
    """The parameter tree of Pointcept's PPT-v1m1 around an SpUNet-v1m3 (num_classes=0), built
    from the official constructors' names and shapes; with ``decoupled_classes`` (one class count
    per condition) PPT-v1m2's, whose ``seg_heads`` replace the language-guided head."""
    def norm(width):
        return _OfficialPDBatchNorm(width, backbone_conditions, context_channels)

    backbone = nn.Module()
    backbone.conv_input = _official_conv_norm(6, base_channels, 5, norm)
    backbone.down, backbone.enc, backbone.up, backbone.dec = (nn.ModuleList() for _ in range(4))
    stages = len(layers) // 2
    enc_channels, dec_channels = base_channels, channels[-1]
    for s in range(stages):
        backbone.down.append(_official_conv_norm(enc_channels, channels[s], 2, norm))
        backbone.enc.append(nn.Sequential(OrderedDict(
            (f"block{i}", _official_block(channels[s], channels[s], norm)) for i in range(layers[s]))))
        backbone.up.append(_official_conv_norm(channels[len(channels) - s - 2], dec_channels, 2, norm))
        backbone.dec.append(nn.Sequential(OrderedDict(
            (f"block{i}", _official_block(dec_channels + enc_channels if i == 0 else dec_channels, dec_channels, norm))
            for i in range(layers[len(channels) - s - 1]))))
        enc_channels, dec_channels = channels[s], channels[len(channels) - s - 2]
    model = nn.Module()
    model.backbone = backbone
    model.embedding_table = nn.Embedding(len(conditions), context_channels)
    if decoupled_classes is not None:
        model.seg_heads = nn.ModuleList(nn.Linear(channels[-1], classes) for classes in decoupled_classes)
    else:
        model.proj_head = nn.Linear(channels[-1], text_dim)
        model.register_buffer("class_embedding", F.normalize(torch.randn(len(POINTCEPT_CLASS_NAMES), text_dim), dim=1))
        model.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)), requires_grad=False)
    generator = torch.Generator().manual_seed(20)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point() and key != "logit_scale":
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1 + (1.0 if "running_var" in key else 0))
    return model


def test_load_pointcept_ppt_v1m1_checkpoint(tmp_path):
    official = _official_ppt_v1m1(CONDITIONS, POINTCEPT_BACKBONE_CONDITIONS, SMALL["base_channels"], SMALL["channels"],
                                  SMALL["layers"], SMALL["context_channels"], TEXT_DIM)
    state = OrderedDict((f"module.{key}", value) for key, value in official.state_dict().items())
    path = tmp_path / "model_best.pth"
    torch.save({"epoch": 100, "state_dict": state, "best_metric_value": 0.5}, path)

    model = _model(zero_init=False).eval()
    report = load_weights(model, path)
    assert (report.format, report.missing, report.unexpected) == ("pointcept", (), ())

    # PDNorm rows: the backbone's conditions are in Pointcept's backbone order.
    for name, module in model.backbone.named_modules():
        if isinstance(module, PDNorm):
            source = official.backbone.get_submodule(name)
            for ours, condition in enumerate(CONDITIONS):
                bn = source.bns[POINTCEPT_BACKBONE_CONDITIONS.index(condition)]
                for table in ("weight", "bias", "running_mean", "running_var"):
                    torch.testing.assert_close(getattr(module, table)[ours], getattr(bn, table), rtol=0, atol=0)
            torch.testing.assert_close(module.modulation[1].weight, source.modulation[1].weight, rtol=0, atol=0)
    torch.testing.assert_close(model.backbone.enc[1].block0.conv1.weight, official.backbone.enc[1].block0.conv1.weight)
    torch.testing.assert_close(model.embedding_table.weight, official.embedding_table.weight)

    # The head: the official computation with class rows picked by name (not Pointcept's
    # valid_index, whose S3DIS order is scrambled).
    sites = _scene_sites(0, 21)
    x = SparseTensor(_features(len(sites), 22), sites, batch_size=1)
    for condition in CONDITIONS:
        features = model.forward_features(x, condition)
        rows = [POINTCEPT_CLASS_NAMES.index(name) for name in CLASS_NAMES[condition]]
        projected = F.normalize(official.proj_head(features), dim=-1)
        expected = projected @ official.class_embedding[rows].t() * official.logit_scale.exp()
        torch.testing.assert_close(model(x, condition), expected)


def _save_pointcept(official, path):
    state = OrderedDict((f"module.{key}", value) for key, value in official.state_dict().items())
    torch.save({"epoch": 100, "state_dict": state}, path)
    return path


@pytest.mark.parametrize("head", ["lang", "decoupled"])
def test_pointcept_rows_are_matched_by_dataset_name(tmp_path, head):
    """An official checkpoint (PPT level in Pointcept's order, Structured3D first) loaded into a
    model built in another condition order: every prompt row, head and norm row follows its
    dataset, so the model predicts exactly as one built in Pointcept's order."""
    assert POINTCEPT_PROMPT_CONDITIONS == CONDITIONS  # the order of _model() and of the official configs
    classes = [len(CLASS_NAMES[c]) for c in POINTCEPT_PROMPT_CONDITIONS] if head == "decoupled" else None
    official = _official_ppt_v1m1(POINTCEPT_PROMPT_CONDITIONS, POINTCEPT_BACKBONE_CONDITIONS, SMALL["base_channels"],
                                  SMALL["channels"], SMALL["layers"], SMALL["context_channels"], TEXT_DIM, classes)
    path = _save_pointcept(official, tmp_path / "model_best.pth")
    reordered = ("ScanNet", "S3DIS", "Structured3D")
    pointcept_order = _model(head=head, zero_init=False).eval()
    ours = _model(head=head, zero_init=False, conditions=reordered).eval()
    for model in (pointcept_order, ours):
        report = load_weights(model, path)
        assert (report.format, report.missing, report.unexpected) == ("pointcept", (), ())

    for index, condition in enumerate(reordered):
        official_row = POINTCEPT_PROMPT_CONDITIONS.index(condition)
        torch.testing.assert_close(ours.embedding_table.weight[index], official.embedding_table.weight[official_row],
                                   rtol=0, atol=0)
        if head == "decoupled":
            torch.testing.assert_close(ours.seg_heads[index].weight, official.seg_heads[official_row].weight,
                                       rtol=0, atol=0)
        bn = official.backbone.conv_input.bn.bns[POINTCEPT_BACKBONE_CONDITIONS.index(condition)]
        torch.testing.assert_close(ours.backbone.conv_input.bn.weight[index], bn.weight, rtol=0, atol=0)
    sites = _scene_sites(0, 23)
    x = SparseTensor(_features(len(sites), 24), sites, batch_size=1)
    for condition in reordered:
        torch.testing.assert_close(ours(x, condition), pointcept_order(x, condition), rtol=1e-5, atol=1e-5)

    # A checkpoint trained in another order, named by the caller.
    custom = ("S3DIS", "Structured3D", "ScanNet")
    rows = [POINTCEPT_PROMPT_CONDITIONS.index(c) for c in custom]
    state = {key.removeprefix("module."): value for key, value in torch.load(path)["state_dict"].items()}
    state["embedding_table.weight"] = state["embedding_table.weight"][rows]
    converted = ours.convert_pointcept_state_dict(state, prompt_conditions=custom)
    torch.testing.assert_close(converted["embedding_table.weight"], ours.embedding_table.weight, rtol=0, atol=0)


def test_pointcept_conversion_checks_the_class_table_and_condition_lists():
    model = _model()
    with pytest.raises(ValueError, match="class_embedding of the checkpoint has shape"):
        model.convert_pointcept_state_dict({"class_embedding": torch.zeros(5, TEXT_DIM)})
    with pytest.raises(ValueError, match="build the model with the checkpoint's text encoder"):
        model.convert_pointcept_state_dict({"class_embedding": torch.zeros(36, 512)})
    with pytest.raises(ValueError, match="backbone_conditions .* are not a reordering of this model's conditions"):
        model.convert_pointcept_state_dict({}, backbone_conditions=("ScanNet", "S3DIS"))
    with pytest.raises(ValueError, match="prompt_conditions .* are not a reordering"):
        model.convert_pointcept_state_dict({}, prompt_conditions=("ScanNet", "S3DIS", "Matterport3D"))
    two = _model(conditions=("ScanNet", "S3DIS"), class_names={c: CLASS_NAMES[c] for c in ("ScanNet", "S3DIS")})
    with pytest.raises(ValueError, match=r"embedding_table.weight of the checkpoint has shape \(3, 8\).*pass the "
                                         "config's conditions"):
        two.convert_pointcept_state_dict({"embedding_table.weight": torch.zeros(3, 8)})
    with pytest.raises(ValueError, match=r"seg_heads.2.weight: the checkpoint has a row 2"):
        two.convert_pointcept_state_dict({"seg_heads.2.weight": torch.zeros(13, 4)})


def test_text_tables_per_condition():
    union = _text()
    per_condition = {c: union.select(n[::-1]) for c, n in CLASS_NAMES.items()}  # TextTables: rows found by name
    model = _model(text=per_condition)
    torch.testing.assert_close(model.class_embedding, union.embeddings)
    tensors = {c: union.select(n).embeddings * 3.0 for c, n in CLASS_NAMES.items()}  # tensors: class order, normalised
    torch.testing.assert_close(_model(text=tensors).class_embedding, union.embeddings)


# ---- bad input


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="head must be one of"):
        _model(head="linear")
    with pytest.raises(ValueError, match="adapter must be one of"):
        _model(adapter="lora")
    with pytest.raises(ValueError, match="class_names must map every condition"):
        _model(class_names={"ScanNet": SCANNET_CLASSES})
    with pytest.raises(ValueError, match="needs text"):
        _model(text=None)
    with pytest.raises(KeyError, match="no embedding for 'wall'"):
        _model(text=_text(names=("floor",)))
    with pytest.raises(ValueError, match="text tables disagree on the embedding of 'wall'"):
        _model(text={c: F.normalize(torch.randn(len(n), 4), dim=1) for c, n in CLASS_NAMES.items()})
    model = _model()
    sites = _scene_sites(0, 23)
    x = SparseTensor(_features(len(sites), 24), sites, batch_size=1)
    with pytest.raises(ValueError, match="unknown condition 'ModelNet'"):
        model(x, "ModelNet")
    with pytest.raises(ValueError, match=r"condition index must be in \[0, 3\)"):
        model(x, 3)
    with pytest.raises(ValueError, match="int64 tensor of shape"):
        model(x, torch.zeros(len(sites), dtype=torch.int32))
    with pytest.raises(ValueError, match=r"condition ids must be in \[0, 3\)"):
        model(x, torch.full((len(sites),), 5, dtype=torch.long))
    segment = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="condition 'S3DIS' has 13 classes"):
        model.loss(torch.zeros(4, 20), segment, "S3DIS")
    with pytest.raises(ValueError, match="unknown condition 'Matterport'"):
        model.loss(torch.zeros(4, 13), segment, "Matterport")
    with pytest.raises(ValueError, match=r"a mixed batch needs logits \(4, 25\)"):
        model.loss(torch.zeros(4, 13), segment, torch.zeros(4, dtype=torch.long))
