import pytest
import torch

from ppt.data import (
    Compose,
    FarthestPointSubsample,
    NormalizeUnitSphere,
    ObjectSample,
    RandomFarthestPointSubsample,
    ScaleAndTranslate,
    ShufflePoints,
    collate_objects,
    normalize_unit_sphere,
)
from ppt.ops import farthest_point_sample


def _sample(count=200, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return ObjectSample(points=torch.rand(count, 3, generator=generator) * 4 + 1, label=3, name="obj")


def _rows_of(subset, points):
    """Index of each row of ``subset`` in ``points`` (rows are unique in these tests)."""
    match = (subset[:, None, :] == points[None, :, :]).all(-1)
    assert match.any(1).all(), "a row is not a point of the input"
    return match.float().argmax(1)


def test_normalize_unit_sphere():
    points = normalize_unit_sphere(_sample().points)
    assert torch.allclose(points.mean(0), torch.zeros(3), atol=1e-6)
    assert torch.isclose(points.norm(dim=1).max(), torch.tensor(1.0))
    assert torch.equal(NormalizeUnitSphere()(_sample(), torch.Generator()).points, points)
    with pytest.raises(ValueError, match="all 5 points coincide"):
        normalize_unit_sphere(torch.ones(5, 3))


def test_farthest_point_subsample_uses_ppt_fps():
    sample = _sample()
    out = FarthestPointSubsample(32)(sample, torch.Generator())
    expected = farthest_point_sample(sample.points[None], 32)[0]
    assert torch.equal(out.points, sample.points[expected]) and out.label == 3 and out.name == "obj"
    with pytest.raises(ValueError, match="has 200 points, fewer than the 256 requested"):
        FarthestPointSubsample(256)(sample, torch.Generator())


def test_random_farthest_point_subsample():
    sample = _sample(300)
    transform = RandomFarthestPointSubsample(64)  # 64 * 75 // 64 = 75 FPS candidates
    out = transform(sample, torch.Generator().manual_seed(1))
    rows = _rows_of(out.points, sample.points)
    assert out.points.shape == (64, 3) and rows.unique().numel() == 64
    again = transform(sample, torch.Generator().manual_seed(1))
    assert torch.equal(out.points, again.points)
    assert not torch.equal(out.points, transform(sample, torch.Generator().manual_seed(2)).points)
    # The subset lies within the 75 points of a farthest point sampling from some start.
    start = None
    for candidate in range(300):
        fps = farthest_point_sample(sample.points[None], 75, start_index=candidate)[0]
        if set(rows.tolist()) <= set(fps.tolist()):
            start = candidate
            break
    assert start is not None, "the subset is not drawn from a farthest point sampling of 75 candidates"
    with pytest.raises(ValueError, match="candidates"):
        RandomFarthestPointSubsample(64, candidates=32)


def test_scale_and_translate_ranges():
    sample = ObjectSample(points=torch.eye(3), label=0, name="axes")
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        out = ScaleAndTranslate(scale_low=0.5, scale_high=2.0, translate_range=0.25)(
            ObjectSample(points=torch.zeros(1, 3), label=0, name="origin"), generator)
        assert out.points.abs().max() <= 0.25  # the origin only moves by the translation
        scaled = ScaleAndTranslate(translate_range=0.0)(sample, generator).points
        assert torch.all((scaled.diagonal() >= 2 / 3) & (scaled.diagonal() < 1.5))
        assert torch.count_nonzero(scaled - torch.diag(scaled.diagonal())) == 0  # per-axis scaling


def test_compose_and_shuffle():
    sample = _sample(50)
    out = Compose([ShufflePoints(), FarthestPointSubsample(10)])(sample, torch.Generator().manual_seed(0))
    assert out.points.shape == (10, 3)
    shuffled = ShufflePoints()(sample, torch.Generator().manual_seed(0)).points
    assert torch.equal(shuffled.sort(0).values, sample.points.sort(0).values)


def test_sample_and_collate_validation():
    with pytest.raises(ValueError, match=r"points must be float32 of shape \(N, 3\)"):
        ObjectSample(points=torch.zeros(4, 2), label=0, name="bad")
    with pytest.raises(ValueError, match="label must be an int"):
        ObjectSample(points=torch.zeros(4, 3), label=2.0, name="bad")
    with pytest.raises(ValueError, match="different point counts"):
        collate_objects([_sample(10), _sample(12)])
    with pytest.raises(ValueError, match="no samples"):
        collate_objects([])
