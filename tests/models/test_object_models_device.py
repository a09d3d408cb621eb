"""The object models on each device of the grid (CUDA runs ppt's FPS/kNN CUDA kernels)."""

import copy

import pytest
import torch

from ppt.models import DAPT, PointMAE, PointMAEPretraining

TINY = dict(num_groups=8, group_size=8, depth=2, dim=48, heads=3)


@pytest.mark.parametrize("build", [
    lambda: PointMAE(num_classes=5, **TINY),
    lambda: PointMAE(num_classes=5, peft="vpt_deep", **TINY),
    lambda: DAPT(num_classes=5, rank=4, **TINY),
], ids=["point_mae", "vpt_deep", "dapt"])
def test_classifier_on_device_matches_cpu(device, build):
    model = build().eval()
    points = torch.randn(3, 96, 3)
    expected = model(points)
    on_device = copy.deepcopy(model).to(device)
    logits = on_device(points.to(device))
    assert logits.device.type == device.type
    torch.testing.assert_close(logits.cpu(), expected, rtol=1e-4, atol=1e-4)
    on_device.train()
    on_device(points.to(device)).square().mean().backward()
    trainable = [p for p in on_device.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)


def test_pretraining_on_device(device):
    model = PointMAEPretraining(num_groups=8, group_size=8, depth=1, dim=48, heads=3, decoder_depth=1,
                                decoder_heads=3).to(device)
    loss = model(torch.randn(2, 64, 3, device=device))
    loss.backward()
    assert loss.device.type == device.type and torch.isfinite(loss)
    assert model.MAE_encoder.encoder.first_conv[0].weight.grad.abs().sum() > 0
