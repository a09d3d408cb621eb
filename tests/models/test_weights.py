"""load_weights: ppt safetensors, Pointcept checkpoints (prefixes, PDNorm rows), reports and bad files."""

import collections
import re

import pytest
import torch
from safetensors.torch import save_file

from ppt.models import SpUNet, load_weights
from ppt.sparse import SparseTensor

pytestmark = pytest.mark.usefixtures("single_thread")


class Payload:
    """Not a tensor or a plain container: torch.load(weights_only=True) must refuse it."""


SMALL = dict(base_channels=4, channels=(4, 8, 8, 8, 8, 8, 4, 4), layers=(1, 1, 1, 1, 1, 1, 1, 1))


def _input(seed=0, points=300, channels=6):
    generator = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, 12, (points, 3), generator=generator), dim=0)
    indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1).int()
    return SparseTensor(torch.randn(len(coords), channels, generator=generator), indices)


def _randomized(model):
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(0.5 + 0.5 * torch.rand(tensor.shape, generator=generator))
    return model.eval()


def test_ppt_safetensors_round_trip(tmp_path):
    source = _randomized(SpUNet(num_classes=5, **SMALL))
    path = tmp_path / "weights.safetensors"
    save_file(source.state_dict(), str(path))
    target = SpUNet(num_classes=5, **SMALL).eval()
    report = load_weights(target, path)
    assert (report.format, report.missing, report.unexpected) == ("ppt", (), ())
    x = _input()
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)
    # An in-memory state dict in ppt's names is "ppt" too.
    assert load_weights(SpUNet(num_classes=5, **SMALL), source.state_dict()).format == "ppt"


def test_report_lists_missing_and_unexpected_and_strict_raises():
    source = SpUNet(num_classes=5, **SMALL).state_dict()
    partial = {k: v for k, v in source.items() if not k.startswith("final.")}
    partial["extra.weight"] = torch.zeros(1)
    report = load_weights(SpUNet(num_classes=5, **SMALL), partial)
    assert report.missing == ("final.weight", "final.bias")
    assert report.unexpected == ("extra.weight",)
    assert "final.weight" in str(report)
    with pytest.raises(ValueError, match="does not match SpUNet exactly"):
        load_weights(SpUNet(num_classes=5, **SMALL), partial, strict=True)


def test_shape_mismatch_names_the_key():
    source = SpUNet(num_classes=20, **SMALL).state_dict()
    with pytest.raises(ValueError, match=re.escape("final.weight: checkpoint (20, 1, 1, 1, 4) vs model (13, 1, 1, 1, 4)")):
        load_weights(SpUNet(num_classes=13, **SMALL), source)


def _as_pointcept_v1m3(state, conditions):
    """A ppt pdnorm state dict in Pointcept's SpUNet-v1m3 checkpoint layout: PDNorm tables split
    into ``bns.{i}.*`` rows, everything under ``module.backbone.``."""
    converted = collections.OrderedDict()
    for key, value in state.items():
        head, _, leaf = key.rpartition(".")
        if leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked") and not head.endswith(
                ("conv", "conv1", "conv2", "proj_conv", "modulation.1")) and head != "final":
            for i in range(len(conditions)):
                converted[f"module.backbone.{head}.bns.{i}.{leaf}"] = value[i]
        else:
            converted[f"module.backbone.{key}"] = value
    return {"state_dict": converted, "epoch": 1}


def test_pointcept_pdnorm_checkpoint(tmp_path):
    conditions = ("ScanNet", "S3DIS", "Structured3D")
    source = _randomized(SpUNet(num_classes=3, norm="pdnorm", context_channels=8, **SMALL))
    checkpoint = _as_pointcept_v1m3(source.state_dict(), conditions)
    assert any(".bns.2.running_var" in key for key in checkpoint["state_dict"])
    path = tmp_path / "ppt.pth"
    torch.save(checkpoint, path)
    target = SpUNet(num_classes=3, norm="pdnorm", context_channels=8, **SMALL).eval()
    report = load_weights(target, path, format="pointcept")
    assert (report.missing, report.unexpected) == ((), ())
    x, context = _input(), torch.randn(3, 8)
    torch.testing.assert_close(target(x, "S3DIS", context), source(x, "S3DIS", context), rtol=0, atol=0)


def test_bad_checkpoints(tmp_path):
    model = SpUNet(num_classes=5, **SMALL)
    with pytest.raises(ValueError, match="unknown format 'timm'"):
        load_weights(model, {}, format="timm")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_weights(model, tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth.*weights_only=True"):
        load_weights(model, garbage)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="broken.safetensors: not a readable safetensors file"):
        load_weights(model, broken)
    pickled = tmp_path / "object.pth"
    torch.save({"state_dict": {"final.weight": Payload()}}, pickled)
    with pytest.raises(ValueError, match="object.pth: cannot be read with torch.load"):
        load_weights(model, pickled)
    with pytest.raises(ValueError, match="shares no key"):
        load_weights(model, {"encoder.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match="given state dict: .*'final.bias' holds a int"):
        load_weights(model, {"state_dict": {"final.bias": 3}})
    with pytest.raises(TypeError, match="does not load Pointcept checkpoints"):
        load_weights(torch.nn.Linear(2, 2), {"state_dict": {"weight": torch.zeros(2, 2)}})
