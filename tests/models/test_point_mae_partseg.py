"""PointMAEPartSeg: the official Point-MAE part-segmentation model (shapes, parameter count,
the head against the official code's computation), DAPT and the PEFT switch on it, and the
official checkpoint layouts through load_weights."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ppt.models import PEFT_METHODS, PointMAEPartSeg, count_parameters, load_weights
from ppt.models.point_mae_partseg import PART_SEG_HEAD
from ppt.models.point_transformer import group_points

TINY = dict(trans_dim=24, num_heads=2, group_size=8, num_group=16)


def _cloud(batch=2, points=96, seed=0):
    return torch.randn(batch, points, 3, generator=torch.Generator().manual_seed(seed))


def test_parameter_count_is_the_official_one():
    model = PointMAEPartSeg()
    assert count_parameters(model).total == 27_063_730  # Point-MAE's get_model(50), printed by its main.py
    assert count_parameters(model).trainable == 27_063_730


def test_forward_shapes_and_log_probabilities():
    torch.manual_seed(0)
    model = PointMAEPartSeg(**TINY).eval()
    out = model(_cloud(), torch.tensor([3, 15]))
    assert out.shape == (2, 96, 50)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, 96))
    with pytest.raises(ValueError, match=r"cls_label must be int64 of shape \(2,\)"):
        model(_cloud(), torch.tensor([3]))
    with pytest.raises(ValueError, match=r"cls_label must lie in \[0, 16\)"):
        model(_cloud(), torch.tensor([3, 16]))
    with pytest.raises(ValueError, match="depth must be > 11"):
        PointMAEPartSeg(depth=8)
    with pytest.raises(ValueError, match="peft must be one of"):
        PointMAEPartSeg(peft="prefix")


def _official_forward(model, pts, cls_label):
    """models/pt.py get_model.forward, with its PointNetFeaturePropagation (square_distance + sort),
    on the model's modules."""
    B, N, _ = pts.shape
    neighborhood, center = group_points(pts, model.num_group, model.group_size)
    x = model.encoder(neighborhood)
    pos = model.pos_embed(center)
    feature_list = []
    for i, block in enumerate(model.blocks.blocks):
        x = block(x + pos)
        if i in [3, 7, 11]:
            feature_list.append(x)
    feature_list = [model.norm(x).transpose(-1, -2).contiguous() for x in feature_list]
    x = torch.cat((feature_list[0], feature_list[1], feature_list[2]), dim=1)
    x_max_feature = torch.max(x, 2)[0].view(B, -1).unsqueeze(-1).repeat(1, 1, N)
    x_avg_feature = torch.mean(x, 2).view(B, -1).unsqueeze(-1).repeat(1, 1, N)
    cls_label_one_hot = torch.eye(16, dtype=pts.dtype)[cls_label].view(B, 16, 1)
    cls_label_feature = model.label_conv(cls_label_one_hot).repeat(1, 1, N)
    x_global_feature = torch.cat((x_max_feature, x_avg_feature, cls_label_feature), 1)
    # PointNetFeaturePropagation(xyz1=pts, xyz2=center, points1=pts, points2=x)
    dists = -2 * torch.matmul(pts, center.permute(0, 2, 1))
    dists += torch.sum(pts ** 2, -1).view(B, N, 1)
    dists += torch.sum(center ** 2, -1).view(B, 1, -1)
    dists, idx = dists.sort(dim=-1)
    dists, idx = dists[:, :, :3], idx[:, :, :3]
    dist_recip = 1.0 / (dists + 1e-8)
    weight = dist_recip / torch.sum(dist_recip, dim=2, keepdim=True)
    points2 = x.permute(0, 2, 1)
    gathered = points2[torch.arange(B)[:, None, None], idx]
    interpolated = torch.sum(gathered * weight.view(B, N, 3, 1), dim=2)
    new_points = torch.cat([pts, interpolated], dim=-1).permute(0, 2, 1)
    for conv, bn in zip(model.propagation_0.mlp_convs, model.propagation_0.mlp_bns):
        new_points = F.relu(bn(conv(new_points)))
    x = torch.cat((new_points, x_global_feature), 1)
    x = F.relu(model.bns1(model.convs1(x)))
    x = model.dp1(x)
    x = F.relu(model.bns2(model.convs2(x)))
    x = model.convs3(x)
    return F.log_softmax(x, dim=1).permute(0, 2, 1)


def test_matches_the_official_computation():
    torch.manual_seed(1)
    model = PointMAEPartSeg(**TINY).double().eval()
    for module in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    pts, label = _cloud().double(), torch.tensor([0, 9])
    with torch.no_grad():
        torch.testing.assert_close(model(pts, label), _official_forward(model, pts, label))


def _trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_peft_switch_trains_the_head_and_the_method_parameters():
    head = {name for name, _ in PointMAEPartSeg(**TINY).named_parameters() if name.split(".")[0] in PART_SEG_HEAD}
    expected_extra = {
        "full": lambda name: True,
        "linear": lambda name: False,
        "bitfit": lambda name: name.endswith(".bias"),
        "lora": lambda name: ".lora." in name,
        "adaptformer": lambda name: ".adapter." in name,
        "vpt_deep": lambda name: name == "blocks.prompt_tokens",
        "dapt": lambda name: "Adapter_MLP" in name or "tfts_" in name.split(".")[-1],
    }
    assert set(expected_extra) == set(PEFT_METHODS)
    for method, extra in expected_extra.items():
        model = PointMAEPartSeg(**TINY, peft=method)
        names = {name for name, _ in model.named_parameters()}
        assert _trainable(model) == head | {name for name in names if extra(name)}, method
        out = model.train()(_cloud(), torch.tensor([1, 2]))
        assert out.shape == (2, 96, 50)
        out.sum().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad), method
        assert all(p.grad is None for p in model.parameters() if not p.requires_grad), method


def test_zero_initialised_side_modules_leave_the_output_unchanged():
    torch.manual_seed(2)
    full = PointMAEPartSeg(**TINY).eval()
    for method in ("lora", "adaptformer"):
        model = PointMAEPartSeg(**TINY, peft=method).eval()
        report = model.load_state_dict(full.state_dict(), strict=False)
        assert not report.unexpected_keys
        with torch.no_grad():
            torch.testing.assert_close(model(_cloud(), torch.tensor([4, 5])), full(_cloud(), torch.tensor([4, 5])))


def test_dapt_prompts_grow_in_front_of_the_patches():
    torch.manual_seed(3)
    model = PointMAEPartSeg(**TINY, peft="dapt").eval()
    features, centers = model.patch_features(_cloud())
    assert features.shape == (2, 16, 3 * 24) and centers.shape == (2, 16, 3)
    assert all(block.prompt_position == 0 for block in model.blocks.blocks)
    trainable, total = count_parameters(model).trainable, count_parameters(model).total
    assert 0 < trainable < total


def _official_partseg_checkpoint(model, path, legacy_numpy=False):
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    checkpoint = {"epoch": 12, "train_acc": np.float64(0.93), "test_acc": np.float64(0.94),
                  "class_avg_iou": np.float64(0.84), "inctance_avg_iou": np.float64(0.86),
                  "model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []}}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy_numpy)
    if legacy_numpy:  # what NumPy 1.x writes (all published checkpoints): numpy.core, not numpy._core
        path.write_bytes(path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    return path


@pytest.mark.parametrize("legacy_numpy", [False, True])
def test_loads_the_official_partseg_checkpoint(tmp_path, legacy_numpy):
    torch.manual_seed(4)
    source = PointMAEPartSeg(**TINY).eval()
    path = _official_partseg_checkpoint(source, tmp_path / "best_model.pth", legacy_numpy)
    if legacy_numpy:
        assert b"numpy.core.multiarray" in path.read_bytes()
    model = PointMAEPartSeg(**TINY).eval()
    report = load_weights(model, path, format="point-mae")
    assert report.missing == () and report.unexpected == () and report.ignored == ()
    assert load_weights(PointMAEPartSeg(**TINY), path).format == "point-mae"  # auto-detected
    with torch.no_grad():
        torch.testing.assert_close(model(_cloud(), torch.tensor([7, 8])), source(_cloud(), torch.tensor([7, 8])))


def test_pretraining_checkpoint_fills_the_backbone(tmp_path):
    from ppt.models import PointMAEPretraining

    pre = PointMAEPretraining(num_groups=16, group_size=8, dim=24, heads=2, decoder_depth=1)
    path = tmp_path / "pretrain.pth"
    torch.save({"base_model": {f"module.{k}": v for k, v in pre.state_dict().items()}, "epoch": 300}, path)
    model = PointMAEPartSeg(**TINY)
    report = load_weights(model, path, format="point-mae")
    assert {key.split(".")[0] for key in report.missing} == set(PART_SEG_HEAD)
    assert report.unexpected == ()
    assert any(key.startswith("MAE_decoder.") for key in report.ignored) and "mask_token" in report.ignored
    torch.testing.assert_close(model.encoder.first_conv[0].weight, pre.MAE_encoder.encoder.first_conv[0].weight)


def test_checkpoints_with_code_are_still_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("should not run",))

    path = tmp_path / "evil.pth"
    with path.open("wb") as file:
        pickle.dump({"model_state_dict": {}, "x": Payload()}, file, protocol=2)
    with pytest.raises(ValueError, match="cannot be read with torch.load"):
        load_weights(PointMAEPartSeg(**TINY), path, format="point-mae")
