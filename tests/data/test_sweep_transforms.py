"""Pointcept's outdoor chain (ppt.data.sweeps.transforms): PointClip clamps, the chains keep the
sensor at the origin, grid-sample at 5 cm and map every point back in validation."""

import pytest
import torch

from ppt.data import SceneSample
from ppt.data.sweeps import PointClip, sweep_train_transform, sweep_val_transform


def _sweep(n=2000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coord = (torch.rand(n, 3, generator=generator) - 0.5) * torch.tensor([160.0, 160.0, 8.0])
    return SceneSample(coord=coord, color=None, normal=None, segment=torch.randint(-1, 19, (n,), generator=generator),
                       instance=torch.full((n,), -1), name="s", condition="SemanticKITTI",
                       strength=torch.rand(n, 1, generator=generator))


def test_point_clip_clamps_onto_the_range_and_keeps_every_point():
    sample = _sweep()
    clipped = PointClip((-35.2, -35.2, -4, 35.2, 35.2, 2))(sample)
    assert clipped.num_points == sample.num_points
    inside = (sample.coord.abs()[:, :2] <= 35.2).all(1) & (sample.coord[:, 2] >= -4) & (sample.coord[:, 2] <= 2)
    torch.testing.assert_close(clipped.coord[inside], sample.coord[inside])
    assert clipped.coord[:, :2].abs().max() == pytest.approx(35.2) and clipped.coord[:, 2].max() == pytest.approx(2.0)
    assert torch.equal(clipped.strength, sample.strength) and torch.equal(clipped.segment, sample.segment)
    with pytest.raises(ValueError, match=r"point_cloud_range must be \(x_min, .*got \(1, 2, 3\)"):
        PointClip((1, 2, 3))
    with pytest.raises(ValueError, match="each min <= its max"):
        PointClip((0, 0, 0, -1, 1, 1))


def test_train_chain_is_seeded_turns_about_the_sensor_and_samples_5cm():
    sample = _sweep()
    chain = sweep_train_transform(0.05, None)
    first = chain(sample, torch.Generator().manual_seed(3))
    again = chain(sample, torch.Generator().manual_seed(3))
    assert torch.equal(first.coord, again.coord) and torch.equal(first.grid_coord, again.grid_coord)
    # rotation about z through the origin, scale 0.9-1.1 and flips: horizontal ranges scale at most 1.1 (+ jitter)
    ratio = first.coord[:, :2].norm(dim=1).max() / sample.coord[:, :2].norm(dim=1).max()
    assert 0.9 - 1e-3 <= float(ratio) <= 1.1 + 1e-3
    assert first.strength.shape == (first.num_points, 1) and first.color is None
    assert len({tuple(row) for row in first.grid_coord.tolist()}) == first.num_points  # one point per voxel
    # without augmentation: clip and grid sampling only
    plain = sweep_train_transform(0.05, (-10, -10, -4, 10, 10, 2), augment=False)(sample, torch.Generator())
    assert plain.coord[:, :2].abs().max() <= 10 and plain.num_points < sample.num_points


def test_val_chain_maps_every_point_back():
    sample = _sweep(n=3000)
    out = sweep_val_transform(0.5, (-35.2, -35.2, -4, 35.2, 35.2, 2))(sample, torch.Generator())
    assert out.inverse.shape == (3000,) and bool((out.inverse >= 0).all())
    assert torch.equal(out.origin_segment, sample.segment)
    # each point's voxel representative lies in the same 0.5 m voxel as the clipped point
    clipped = PointClip((-35.2, -35.2, -4, 35.2, 35.2, 2))(sample).coord
    assert torch.equal(torch.floor(out.coord[out.inverse] / 0.5), torch.floor(clipped / 0.5))

