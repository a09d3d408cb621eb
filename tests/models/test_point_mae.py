import pytest
import torch

from ppt.models import PointMAE, PointMAEPretraining, chamfer_l2
from ppt.models.point_transformer import group_points
from ppt.ops import farthest_point_sample

TINY = dict(num_groups=8, group_size=8, depth=2, dim=48, heads=3)


def test_parameter_count_full_size():
    model = PointMAE(num_classes=15)
    count = model.parameter_count()
    assert count.total == count.trainable == 22_093_327
    assert round(count.total / 1e6, 1) == 22.1
    assert len(model.blocks.blocks) == 12 and model.blocks.blocks[0].attn.heads == 6
    assert model.blocks.blocks[0].norm1.normalized_shape == (384,)


def test_group_points():
    points = torch.randn(2, 100, 3)
    neighborhood, centers = group_points(points, 10, 6)
    assert neighborhood.shape == (2, 10, 6, 3) and centers.shape == (2, 10, 3)
    index = farthest_point_sample(points, 10)
    assert torch.equal(centers, torch.stack([points[b, index[b]] for b in range(2)]))
    # Each group holds its centre's 6 nearest points (the centre itself first), relative to the centre.
    for b in range(2):
        for g in range(10):
            nearest = (points[b] - centers[b, g]).norm(dim=1).argsort()[:6]
            assert torch.allclose(neighborhood[b, g], points[b, nearest] - centers[b, g])
    assert torch.all(neighborhood[:, :, 0] == 0)
    with pytest.raises(ValueError, match="too small for 10 groups of 32 points"):
        group_points(points[:, :20], 10, 32)
    with pytest.raises(ValueError, match=r"shape \(B, N, 3\)"):
        group_points(torch.randn(100, 3), 10, 6)


def test_forward_backward_shapes():
    model = PointMAE(num_classes=5, **TINY)
    points = torch.randn(3, 64, 3)
    logits = model(points)
    assert logits.shape == (3, 5)
    assert model.forward_features(points).shape == (3, 1 + 8, 48)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert torch.equal(model(points), model(points))


def test_chamfer_l2_matches_brute_force():
    predicted = torch.randn(4, 7, 3, dtype=torch.float64, requires_grad=True)
    target = torch.randn(4, 9, 3, dtype=torch.float64, requires_grad=True)
    loss = chamfer_l2(predicted, target)
    distance = torch.cdist(predicted, target) ** 2
    expected = distance.min(dim=2).values.mean() + distance.min(dim=1).values.mean()
    assert torch.allclose(loss, expected)
    grads = torch.autograd.grad(loss, (predicted, target))
    expected_grads = torch.autograd.grad(expected, (predicted, target))
    for got, want in zip(grads, expected_grads):
        assert torch.allclose(got, want)


def test_pretraining_masks_and_reconstructs():
    model = PointMAEPretraining(num_groups=10, group_size=8, depth=2, dim=48, heads=3, decoder_depth=1, decoder_heads=3)
    points = torch.randn(2, 80, 3)
    predicted, target, mask = model.reconstruct(points)
    assert mask.shape == (2, 10) and mask.sum(dim=1).tolist() == [6, 6]  # int(0.6 * 10) per cloud
    assert predicted.shape == target.shape == (12, 8, 3)
    neighborhood, _ = group_points(points, 10, 8)
    assert torch.equal(target, neighborhood[mask].reshape(12, 8, 3))
    loss = model(points)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name in ("MAE_encoder.encoder.first_conv.0.weight", "MAE_encoder.blocks.blocks.0.attn.qkv.weight",
                 "MAE_decoder.blocks.0.mlp.fc2.weight", "mask_token", "increase_dim.0.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    # A few steps of training lower the loss on a fixed batch.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    first = model(points).item()
    for _ in range(15):
        optimizer.zero_grad()
        model(points).backward()
        optimizer.step()
    torch.manual_seed(0)
    assert model(points).item() < first
    with pytest.raises(ValueError, match="masks no patch"):
        PointMAEPretraining(num_groups=4, mask_ratio=0.2)
