"""Outdoor transforms: Pointcept's LiDAR chains (``configs/semantic_kitti``, ``configs/nuscenes``,
``configs/waymo``, SpUNet and PPT) out of the scene transforms plus :class:`PointClip`::

    Compose([
        RandomRotate(angle=(-1, 1), axis="z", center=(0, 0, 0), p=0.5),
        PointClip(point_cloud_range=(-35.2, -35.2, -4, 35.2, 35.2, 2)),   # per dataset; none for nuScenes
        RandomScale(scale=(0.9, 1.1)),
        RandomFlip(p=0.5),
        RandomJitter(sigma=0.005, clip=0.02),
        GridSample(grid_size=0.05),
    ])

and the features ``("coord", "strength")`` (4 channels). Unlike the indoor chain there is no
centring, crop, dropout, elastic distortion or colour: the sensor stays at the origin, rotations
turn about it, and the whole sweep is one sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ppt.data.scenes.sample import SceneSample
from ppt.data.scenes.transforms import Compose, GridSample, RandomFlip, RandomJitter, RandomRotate, RandomScale

__all__ = ["PointClip", "sweep_train_transform", "sweep_val_transform", "SWEEP_FEATURES"]

SWEEP_FEATURES = ("coord", "strength")
"""Pointcept's ``feat_keys`` of every outdoor config."""


@dataclass(frozen=True)
class PointClip:
    """Clamp every coordinate into ``point_cloud_range`` ``(x_min, y_min, z_min, x_max, y_max,
    z_max)``: points beyond it move onto its faces (Pointcept's ``PointClip`` clips, it does not
    drop points, so every point keeps a prediction)."""

    point_cloud_range: tuple[float, float, float, float, float, float] = (-80.0, -80.0, -3.0, 80.0, 80.0, 1.0)

    def __post_init__(self) -> None:
        bounds = tuple(self.point_cloud_range)
        if len(bounds) != 6 or any(low > high for low, high in zip(bounds[:3], bounds[3:])):
            raise ValueError("PointClip: point_cloud_range must be (x_min, y_min, z_min, x_max, y_max, z_max) with "
                             f"each min <= its max, got {self.point_cloud_range!r}")

    def __call__(self, sample: SceneSample, generator: torch.Generator | None = None) -> SceneSample:
        low = torch.tensor(self.point_cloud_range[:3], dtype=sample.coord.dtype)
        high = torch.tensor(self.point_cloud_range[3:], dtype=sample.coord.dtype)
        return sample.replace(coord=torch.maximum(torch.minimum(sample.coord, high), low))


def _clip(point_cloud_range: Sequence[float] | None) -> list[PointClip]:
    return [] if point_cloud_range is None else [PointClip(tuple(point_cloud_range))]


def sweep_train_transform(grid_size: float = 0.05, point_cloud_range: Sequence[float] | None = None,
                          augment: bool = True) -> Compose:
    """Pointcept's outdoor training chain (module docstring); ``point_cloud_range=None`` leaves
    the coordinates unclipped (nuScenes); without ``augment`` only the clip and grid sampling."""
    clip = _clip(point_cloud_range)
    if not augment:
        return Compose([*clip, GridSample(grid_size=grid_size)])
    return Compose([RandomRotate(angle=(-1, 1), axis="z", center=(0, 0, 0), p=0.5), *clip,
                    RandomScale(scale=(0.9, 1.1)), RandomFlip(p=0.5), RandomJitter(sigma=0.005, clip=0.02),
                    GridSample(grid_size=grid_size)])


def sweep_val_transform(grid_size: float = 0.05, point_cloud_range: Sequence[float] | None = None) -> Compose:
    """Pointcept's outdoor validation chain: clip, then one point per voxel with the inverse map
    to every point of the sweep."""
    return Compose([*_clip(point_cloud_range), GridSample(grid_size=grid_size, return_inverse=True)])
