"""Transforms of object point clouds: small callables ``(sample, generator) -> sample``.

They follow Point-MAE's data pipeline: unit-sphere normalisation (``pc_normalize``), farthest point
subsampling (its runners' ``misc.fps`` / ``furthest_point_sample``) through
:func:`ppt.ops.farthest_point_sample`, and ``PointcloudScaleAndTranslate``. Randomness comes only
from the ``generator`` argument, so a dataset that seeds it per item is reproducible across workers.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ppt.data.objects.sample import ObjectSample
from ppt.ops import farthest_point_sample

__all__ = [
    "ObjectTransform",
    "normalize_unit_sphere",
    "NormalizeUnitSphere",
    "FarthestPointSubsample",
    "RandomFarthestPointSubsample",
    "RandomSubsample",
    "ShufflePoints",
    "ScaleAndTranslate",
    "Compose",
]

ObjectTransform = Callable[[ObjectSample, torch.Generator], ObjectSample]


def normalize_unit_sphere(points: Tensor) -> Tensor:
    """Centre ``(N, 3)`` points on their mean and scale the farthest one to distance 1."""
    if points.shape[0] == 0:
        raise ValueError("normalize_unit_sphere: the cloud has no points")
    centred = points - points.mean(dim=0)
    radius = centred.norm(dim=1).max()
    if not radius > 0:
        raise ValueError(f"normalize_unit_sphere: all {points.shape[0]} points coincide (or are not finite); "
                         "there is no scale to normalise")
    return centred / radius


def _require_points(sample: ObjectSample, count: int, transform: str) -> None:
    if sample.points.shape[0] < count:
        raise ValueError(f"{transform}: object {sample.name!r} has {sample.points.shape[0]} points, fewer than "
                         f"the {count} requested")


class NormalizeUnitSphere:
    """:func:`normalize_unit_sphere` as a transform."""

    def __call__(self, sample: ObjectSample, generator: torch.Generator) -> ObjectSample:
        return sample.with_points(normalize_unit_sphere(sample.points))


class FarthestPointSubsample:
    """Keep ``num_points`` points chosen by farthest point sampling from the first point (deterministic;
    Point-MAE's evaluation subsampling)."""

    def __init__(self, num_points: int) -> None:
        if num_points < 1:
            raise ValueError(f"FarthestPointSubsample: num_points must be >= 1, got {num_points}")
        self.num_points = num_points

    def __call__(self, sample: ObjectSample, generator: torch.Generator) -> ObjectSample:
        _require_points(sample, self.num_points, type(self).__name__)
        index = farthest_point_sample(sample.points.unsqueeze(0), self.num_points)[0]
        return sample.with_points(sample.points[index])


class RandomFarthestPointSubsample:
    """Point-MAE's training subsampling: farthest point sampling of ``candidates`` points from a random
    start, then a random ``num_points`` of them.

    ``candidates`` defaults to ``num_points * 75 // 64`` capped at the cloud size, the numbers of
    Point-MAE's fine-tuning runner (1200 for 1024 points, 2400 for 2048, all 8192 for 8192).
    """

    def __init__(self, num_points: int, candidates: int | None = None) -> None:
        if num_points < 1:
            raise ValueError(f"RandomFarthestPointSubsample: num_points must be >= 1, got {num_points}")
        if candidates is not None and candidates < num_points:
            raise ValueError(f"RandomFarthestPointSubsample: candidates ({candidates}) must be >= num_points "
                             f"({num_points})")
        self.num_points = num_points
        self.candidates = candidates

    def __call__(self, sample: ObjectSample, generator: torch.Generator) -> ObjectSample:
        count = sample.points.shape[0]
        _require_points(sample, self.num_points, type(self).__name__)
        candidates = min(count, self.candidates if self.candidates is not None else self.num_points * 75 // 64)
        start = int(torch.randint(count, (1,), generator=generator))
        index = farthest_point_sample(sample.points.unsqueeze(0), candidates, start_index=start)[0]
        chosen = torch.randperm(candidates, generator=generator)[: self.num_points]
        return sample.with_points(sample.points[index[chosen]])


class RandomSubsample:
    """A uniformly random ``num_points`` of the points, without replacement (Point-MAE's ShapeNet
    pre-training sampling)."""

    def __init__(self, num_points: int) -> None:
        if num_points < 1:
            raise ValueError(f"RandomSubsample: num_points must be >= 1, got {num_points}")
        self.num_points = num_points

    def __call__(self, sample: ObjectSample, generator: torch.Generator) -> ObjectSample:
        _require_points(sample, self.num_points, type(self).__name__)
        chosen = torch.randperm(sample.points.shape[0], generator=generator)[: self.num_points]
        return sample.with_points(sample.points[chosen])


class ShufflePoints:
    """Randomly permute the point order (what Point-MAE's datasets do to training items)."""

    def __call__(self, sample: ObjectSample, generator: torch.Generator) -> ObjectSample:
        return sample.with_points(sample.points[torch.randperm(sample.points.shape[0], generator=generator)])


class ScaleAndTranslate:
    """Scale each axis by a factor drawn from ``[scale_low, scale_high)`` and shift it by an offset drawn
    from ``[-translate_range, translate_range)`` (Point-MAE's ``PointcloudScaleAndTranslate``)."""

    def __init__(self, scale_low: float = 2.0 / 3.0, scale_high: float = 3.0 / 2.0, translate_range: float = 0.2) -> None:
        if not 0 < scale_low <= scale_high:
            raise ValueError(f"ScaleAndTranslate: need 0 < scale_low <= scale_high, got {scale_low}, {scale_high}")
        if translate_range < 0:
            raise ValueError(f"ScaleAndTranslate: translate_range must be >= 0, got {translate_range}")
        self.scale_low = scale_low
        self.scale_high = scale_high
        self.translate_range = translate_range

    def draw(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Scales and shifts of ``count`` clouds, each ``(count, 1, 3)``."""
        scale = self.scale_low + (self.scale_high - self.scale_low) * torch.rand(count, 1, 3, generator=generator)
        shift = self.translate_range * (2 * torch.rand(count, 1, 3, generator=generator) - 1)
        return scale, shift

    def __call__(self, sample: ObjectSample, generator: torch.Generator) -> ObjectSample:
        scale, shift = self.draw(1, generator)
        return sample.with_points(sample.points * scale[0] + shift[0])


class Compose:
    """Apply transforms in order, all with the same generator."""

    def __init__(self, transforms: Sequence[ObjectTransform]) -> None:
        self.transforms = tuple(transforms)

    def __call__(self, sample: ObjectSample, generator: torch.Generator) -> ObjectSample:
        for transform in self.transforms:
            sample = transform(sample, generator)
        return sample
