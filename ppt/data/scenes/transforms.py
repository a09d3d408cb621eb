"""Scene augmentations and sampling: Pointcept's training chain as small typed callables.

Every transform is called as ``transform(sample, generator)`` and returns a new
:class:`~ppt.data.SceneSample`; all randomness comes from the ``torch.Generator`` passed in, so a
chain is reproducible per seed (:class:`~ppt.data.SceneDataset` seeds one per item and epoch).
Parameters and their defaults follow Pointcept's ``pointcept/datasets/transform.py``; angles are
in units of pi as there. Pointcept's standard ScanNet training chain::

    Compose([
        CenterShift(apply_z=True),
        RandomDropout(dropout_ratio=0.2, application_ratio=0.2),
        RandomRotate(angle=(-1, 1), axis="z", center=(0, 0, 0), p=0.5),
        RandomRotate(angle=(-1 / 64, 1 / 64), axis="x", p=0.5),
        RandomRotate(angle=(-1 / 64, 1 / 64), axis="y", p=0.5),
        RandomScale(scale=(0.9, 1.1)),
        RandomFlip(p=0.5),
        RandomJitter(sigma=0.005, clip=0.02),
        ElasticDistortion(),
        ChromaticAutoContrast(p=0.2),
        ChromaticTranslation(p=0.95, ratio=0.05),
        ChromaticJitter(p=0.95, std=0.05),
        GridSample(grid_size=0.02),
        SphereCrop(point_max=100000),
        CenterShift(apply_z=False),
        NormalizeColor(),
        ShufflePoint(),
    ])

Differences from Pointcept, all deliberate: grid sampling uses :func:`ppt.ops.voxelize` (voxels
in ``(x, y, z)`` order instead of hash order; train mode picks a uniformly random point of each
voxel); :class:`GridFragments` is Pointcept's ``GridSample(mode="test")``; ``SphereCrop`` keeps
the chosen points in their original order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ppt.data.scenes.dataset import SceneTransform
from ppt.data.scenes.sample import SceneSample
from ppt.ops.point import voxelize

__all__ = [
    "Compose", "CenterShift", "RandomDropout", "RandomRotate", "RandomRotateTargetAngle", "RandomScale",
    "RandomFlip", "RandomJitter", "ElasticDistortion", "ChromaticAutoContrast", "ChromaticTranslation",
    "ChromaticJitter", "GridSample", "GridFragments", "SphereCrop", "NormalizeColor", "ShufflePoint",
]

_AXES = ("x", "y", "z")


def _uniform(generator: torch.Generator, low: float, high: float, size: tuple[int, ...] = ()) -> Tensor:
    return low + (high - low) * torch.rand(size, generator=generator, dtype=torch.float64)


def _happens(p: float, generator: torch.Generator) -> bool:
    """Draw one uniform number (always, so the stream does not depend on ``p``) and compare with ``p``."""
    return float(torch.rand((), generator=generator, dtype=torch.float64)) < p


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must be in [0, 1], got {p}")


def _check_range(name: str, field: str, value: Sequence[float]) -> None:
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name}: {field} must be a (low, high) pair with low <= high, got {value!r}")


@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, each with the same generator."""

    transforms: Sequence[SceneTransform]

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        for transform in self.transforms:
            sample = transform(sample, generator)
        return sample


@dataclass(frozen=True)
class CenterShift:
    """Move the bounding box's xy centre to the origin and, with ``apply_z``, its bottom to z = 0."""

    apply_z: bool = True

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        if sample.num_points == 0:
            return sample
        coord = sample.coord.double()
        low, high = coord.amin(0), coord.amax(0)
        shift = (low + high) / 2
        shift[2] = low[2] if self.apply_z else 0.0
        return sample.replace(coord=(coord - shift).float())


@dataclass(frozen=True)
class RandomDropout:
    """With probability ``application_ratio``, keep a random ``floor(N (1 - dropout_ratio))`` of the
    points, and every point of ``labelled`` besides (as Pointcept does for limited annotations)."""

    dropout_ratio: float = 0.2
    application_ratio: float = 0.5

    def __post_init__(self) -> None:
        _check_probability("RandomDropout", self.application_ratio)
        if not 0.0 <= self.dropout_ratio < 1.0:
            raise ValueError(f"RandomDropout: dropout_ratio must be in [0, 1), got {self.dropout_ratio}")

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        if not _happens(self.application_ratio, generator):
            return sample
        n = sample.num_points
        keep = int(n * (1 - self.dropout_ratio))
        rows = torch.randperm(n, generator=generator)[:keep]
        if sample.labelled is not None:
            chosen = sample.labelled.clone()
            chosen[rows] = True
            return sample.select(chosen.nonzero()[:, 0])
        return sample.select(rows.sort().values)


def _rotation(axis: str, angle: float) -> Tensor:
    """Right-handed rotation by ``angle`` radians about ``axis``, as a (3, 3) float64 matrix."""
    c, s = math.cos(angle), math.sin(angle)
    rows = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]],
            "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
            "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
    return torch.tensor(rows, dtype=torch.float64)


def _rotate(sample: SceneSample, axis: str, angle: float, center: Sequence[float] | None) -> SceneSample:
    """Rotate coordinates about ``center`` (default: the bounding box centre) and normals."""
    rotation = _rotation(axis, angle)
    coord = sample.coord.double()
    if center is None:
        pivot = (coord.amin(0) + coord.amax(0)) / 2 if sample.num_points else torch.zeros(3, dtype=torch.float64)
    else:
        pivot = torch.tensor(center, dtype=torch.float64)
    coord = (coord - pivot) @ rotation.T + pivot
    normal = None if sample.normal is None else (sample.normal.double() @ rotation.T).float()
    return sample.replace(coord=coord.float(), normal=normal)


def _check_rotation(name: str, axis: str, center: Sequence[float] | None, p: float) -> None:
    if axis not in _AXES:
        raise ValueError(f"{name}: axis must be 'x', 'y' or 'z', got {axis!r}")
    if center is not None and len(center) != 3:
        raise ValueError(f"{name}: center must be None or (x, y, z), got {center!r}")
    _check_probability(name, p)


@dataclass(frozen=True)
class RandomRotate:
    """With probability ``p``, rotate about ``axis`` by a uniform angle in ``angle`` (units of pi)
    around ``center`` (default: the bounding box centre)."""

    angle: tuple[float, float] = (-1.0, 1.0)
    axis: str = "z"
    center: tuple[float, float, float] | None = None
    p: float = 0.5

    def __post_init__(self) -> None:
        _check_range("RandomRotate", "angle", self.angle)
        _check_rotation("RandomRotate", self.axis, self.center, self.p)

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        if not _happens(self.p, generator):
            return sample
        angle = float(_uniform(generator, *self.angle)) * math.pi
        return _rotate(sample, self.axis, angle, self.center)


@dataclass(frozen=True)
class RandomRotateTargetAngle:
    """With probability ``p``, rotate about ``axis`` by one of ``angles`` (units of pi), chosen
    uniformly (Pointcept's test-time augmentation uses one angle each, with ``p=1``)."""

    angles: tuple[float, ...] = (0.5, 1.0, 1.5)
    axis: str = "z"
    center: tuple[float, float, float] | None = None
    p: float = 0.75

    def __post_init__(self) -> None:
        if len(self.angles) == 0:
            raise ValueError("RandomRotateTargetAngle: angles must not be empty")
        _check_rotation("RandomRotateTargetAngle", self.axis, self.center, self.p)

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        if not _happens(self.p, generator):
            return sample
        choice = int(torch.randint(len(self.angles), (), generator=generator))
        return _rotate(sample, self.axis, self.angles[choice] * math.pi, self.center)


@dataclass(frozen=True)
class RandomScale:
    """Multiply coordinates by a uniform factor in ``scale`` (one per axis when ``anisotropic``)."""

    scale: tuple[float, float] = (0.95, 1.05)
    anisotropic: bool = False

    def __post_init__(self) -> None:
        _check_range("RandomScale", "scale", self.scale)

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        factor = _uniform(generator, *self.scale, (3 if self.anisotropic else 1,))
        return sample.replace(coord=(sample.coord.double() * factor).float())


@dataclass(frozen=True)
class RandomFlip:
    """Mirror x (and, independently, y) with probability ``p`` each; normals follow."""

    p: float = 0.5

    def __post_init__(self) -> None:
        _check_probability("RandomFlip", self.p)

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        sign = torch.ones(3)
        for axis in (0, 1):
            if _happens(self.p, generator):
                sign[axis] = -1.0
        normal = None if sample.normal is None else sample.normal * sign
        return sample.replace(coord=sample.coord * sign, normal=normal)


@dataclass(frozen=True)
class RandomJitter:
    """Add Gaussian noise of std ``sigma``, clipped to ``[-clip, clip]``, to every coordinate."""

    sigma: float = 0.01
    clip: float = 0.05

    def __post_init__(self) -> None:
        if self.clip <= 0 or self.sigma < 0:
            raise ValueError(f"RandomJitter: need sigma >= 0 and clip > 0, got sigma={self.sigma}, clip={self.clip}")

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        noise = torch.randn(sample.num_points, 3, generator=generator) * self.sigma
        return sample.replace(coord=sample.coord + noise.clamp(-self.clip, self.clip))


def _box_blur(noise: Tensor) -> Tensor:
    """One pass of a 3-tap mean filter along x, then y, then z, zero outside (scipy 'constant')."""
    channels = noise.shape[-1]
    volume = noise.permute(3, 0, 1, 2).unsqueeze(0)  # (1, C, X, Y, Z)
    for dim in range(3):
        shape = [1, 1, 1]
        shape[dim] = 3
        kernel = torch.full((channels, 1, *shape), 1.0 / 3.0, dtype=noise.dtype)
        padding = [0, 0, 0]
        padding[dim] = 1
        volume = F.conv3d(volume, kernel, padding=tuple(padding), groups=channels)
    return volume[0].permute(1, 2, 3, 0)


def _trilinear(values: Tensor, position: Tensor) -> Tensor:
    """Trilinear interpolation of ``values`` ``(X, Y, Z, C)`` at fractional grid ``position`` ``(N, 3)``
    (inside ``[0, X-1] x [0, Y-1] x [0, Z-1]``)."""
    size = torch.tensor(values.shape[:3])
    low = position.floor().long().clamp(min=torch.zeros(3, dtype=torch.long), max=(size - 2).clamp(min=0))
    weight = (position - low).to(values.dtype)
    high = (low + 1).minimum(size - 1)
    result = torch.zeros(position.shape[0], values.shape[3], dtype=values.dtype)
    for corner in range(8):
        bits = [(corner >> axis) & 1 for axis in range(3)]
        index = [high[:, axis] if bit else low[:, axis] for axis, bit in enumerate(bits)]
        factor = torch.ones(position.shape[0], dtype=values.dtype)
        for axis, bit in enumerate(bits):
            factor = factor * (weight[:, axis] if bit else 1 - weight[:, axis])
        result += factor[:, None] * values[index[0], index[1], index[2]]
    return result


@dataclass(frozen=True)
class ElasticDistortion:
    """With probability ``p``, for each ``(granularity, magnitude)``: displace points by
    ``magnitude`` times a smooth random field, Gaussian noise on a grid of spacing ``granularity``
    (metres) blurred twice by 3-tap box filters and interpolated trilinearly (Pointcept /
    MinkowskiEngine's elastic distortion)."""

    distortion_params: tuple[tuple[float, float], ...] = ((0.2, 0.4), (0.8, 1.6))
    p: float = 0.95

    def __post_init__(self) -> None:
        _check_probability("ElasticDistortion", self.p)
        for granularity, _ in self.distortion_params:
            if granularity <= 0:
                raise ValueError(f"ElasticDistortion: granularity must be positive, got {granularity}")

    @staticmethod
    def distort(coord: Tensor, granularity: float, magnitude: float, generator: torch.Generator) -> Tensor:
        """``coord`` ``(N, 3)`` float64 displaced by one smooth random field."""
        low = coord.amin(0)
        noise_dim = ((coord - low).amax(0) // granularity).long() + 3
        noise = torch.randn(*noise_dim.tolist(), 3, generator=generator, dtype=torch.float32)
        for _ in range(2):
            noise = _box_blur(noise)
        # Grid node k of an axis sits at low - granularity + k * granularity.
        position = (coord - (low - granularity)) / granularity
        return coord + _trilinear(noise.double(), position) * magnitude

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        if sample.num_points == 0 or not _happens(self.p, generator):
            return sample
        coord = sample.coord.double()
        for granularity, magnitude in self.distortion_params:
            coord = self.distort(coord, granularity, magnitude, generator)
        return sample.replace(coord=coord.float())


@dataclass(frozen=True)
class ChromaticAutoContrast:
    """With probability ``p``, stretch each colour channel to span [0, 255] and blend with the
    original by ``blend_factor`` (uniform in [0, 1) when None). Colours in [0, 255]."""

    p: float = 0.2
    blend_factor: float | None = None

    def __post_init__(self) -> None:
        _check_probability("ChromaticAutoContrast", self.p)

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        if not _happens(self.p, generator) or sample.num_points == 0:
            return sample
        low, high = sample.color.amin(0), sample.color.amax(0)
        span = high - low
        if not bool((span > 0).any()):
            return sample
        scale = torch.where(span > 0, 255.0 / span.clamp(min=1e-12), torch.ones_like(span))
        contrast = (sample.color - low) * scale
        blend = float(torch.rand((), generator=generator)) if self.blend_factor is None else self.blend_factor
        return sample.replace(color=(1 - blend) * sample.color + blend * contrast)


@dataclass(frozen=True)
class ChromaticTranslation:
    """With probability ``p``, add one uniform offset in ``±255 ratio`` per channel, clip to [0, 255]."""

    p: float = 0.95
    ratio: float = 0.05

    def __post_init__(self) -> None:
        _check_probability("ChromaticTranslation", self.p)

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        if not _happens(self.p, generator):
            return sample
        offset = (torch.rand(1, 3, generator=generator) - 0.5) * 255 * 2 * self.ratio
        return sample.replace(color=(sample.color + offset).clamp(0, 255))


@dataclass(frozen=True)
class ChromaticJitter:
    """With probability ``p``, add Gaussian noise of std ``255 std`` per point and channel, clip to [0, 255]."""

    p: float = 0.95
    std: float = 0.005

    def __post_init__(self) -> None:
        _check_probability("ChromaticJitter", self.p)

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        if not _happens(self.p, generator):
            return sample
        noise = torch.randn(sample.num_points, 3, generator=generator) * (self.std * 255)
        return sample.replace(color=(sample.color + noise).clamp(0, 255))


def _voxel_groups(sample: SceneSample, grid_size: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Grid coordinates ``(M, 3)`` int32, the voxel of each point ``(N,)``, the points sorted by
    voxel (stable) ``(N,)``, each voxel's first position in that order ``(M,)`` and its point count ``(M,)``."""
    voxels, inverse, counts = voxelize(sample.coord, grid_size)
    by_voxel = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    return voxels[:, 1:].contiguous(), inverse, by_voxel, starts, counts


def _check_grid(name: str, grid_size: float) -> None:
    if not grid_size > 0:
        raise ValueError(f"{name}: grid_size must be positive, got {grid_size}")


@dataclass(frozen=True)
class GridSample:
    """Train-mode grid sampling: keep one uniformly random point per voxel of edge ``grid_size``
    (voxels of :func:`ppt.ops.voxelize`, Pointcept's grid), sets ``grid_coord``. A voxel holding
    points of ``labelled`` (limited annotations) keeps a random one of those, so annotated points
    survive the sampling (Pointcept appends them beside the voxel's point instead, which would put
    two points on one site of the sparse grid; here two annotated points in one voxel, rare at
    20-200 per scene, take turns across epochs).

    With ``return_inverse`` (validation), also records for every input point the row of its
    voxel's point (``inverse``) and the input labels (``origin_segment``; ``-1`` outside
    ``labelled``), so predictions on the sample map back to the whole scene as ``logits[inverse]``.
    """

    grid_size: float = 0.05
    return_inverse: bool = False

    def __post_init__(self) -> None:
        _check_grid("GridSample", self.grid_size)

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        grid_coord, voxel_of_point, by_voxel, starts, counts = _voxel_groups(sample, self.grid_size)
        choices = counts
        if sample.labelled is not None:
            # within each voxel, annotated points first; draw among them where a voxel has any
            annotated = sample.labelled[by_voxel]
            by_voxel = by_voxel[torch.argsort(voxel_of_point[by_voxel] * 2 + (~annotated).long(), stable=True)]
            annotated_counts = torch.zeros_like(counts).index_add_(0, voxel_of_point, sample.labelled.long())
            choices = torch.where(annotated_counts > 0, annotated_counts, counts)
        pick = (torch.rand(counts.shape[0], generator=generator, dtype=torch.float64) * choices).long()
        rows = by_voxel[starts + pick.minimum(choices - 1)]
        changes = {"grid_coord": grid_coord}
        if sample.inverse is not None:  # compose with an earlier sampling
            changes["inverse"] = torch.where(sample.inverse >= 0, voxel_of_point[sample.inverse.clamp(min=0)], -1)
        elif self.return_inverse:
            changes["inverse"], changes["origin_segment"] = voxel_of_point, sample.labelled_segment
        return sample.select(rows, **changes)


@dataclass(frozen=True)
class GridFragments:
    """Test-mode grid sampling (Pointcept's ``GridSample(mode="test")``): split the scene into
    ``max points per voxel`` fragments; fragment ``i`` holds, of every voxel, its point number
    ``i mod count`` (points of a voxel in their original order). Together the fragments cover
    every point; each sets ``grid_coord`` and ``index`` (the rows of the input scene, so
    predictions accumulate per point as ``scores[index] += logits``).
    """

    grid_size: float = 0.05

    def __post_init__(self) -> None:
        _check_grid("GridFragments", self.grid_size)

    def __call__(self, sample: SceneSample, generator: torch.Generator | None = None) -> list[SceneSample]:
        grid_coord, _, by_voxel, starts, counts = _voxel_groups(sample, self.grid_size)
        fragments = []
        for i in range(int(counts.max()) if counts.numel() else 0):
            rows = by_voxel[starts + i % counts]
            index = rows if sample.index is None else sample.index[rows]
            fragments.append(sample.select(rows, grid_coord=grid_coord, index=index, inverse=None, origin_segment=None))
        return fragments


@dataclass(frozen=True)
class SphereCrop:
    """Keep at most ``point_max`` points (or ``sample_rate * N`` when given): those nearest to a
    centre that is a random point (``mode="random"``) or the middle row (``mode="center"``)."""

    point_max: int = 80000
    sample_rate: float | None = None
    mode: str = "random"

    def __post_init__(self) -> None:
        if self.mode not in ("random", "center"):
            raise ValueError(f"SphereCrop: mode must be 'random' or 'center', got {self.mode!r}")
        if self.point_max <= 0 or (self.sample_rate is not None and not 0 < self.sample_rate <= 1):
            raise ValueError(f"SphereCrop: need point_max > 0 and sample_rate in (0, 1], got "
                             f"{self.point_max}, {self.sample_rate}")

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        n = sample.num_points
        limit = int(self.sample_rate * n) if self.sample_rate is not None else self.point_max
        if n <= limit:
            return sample
        center_row = int(torch.randint(n, (), generator=generator)) if self.mode == "random" else n // 2
        distance = (sample.coord.double() - sample.coord[center_row].double()).square().sum(1)
        rows = torch.argsort(distance, stable=True)[:limit].sort().values
        return sample.select(rows)


@dataclass(frozen=True)
class NormalizeColor:
    """Colours from [0, 255] to [0, 1]."""

    def __call__(self, sample: SceneSample, generator: torch.Generator | None = None) -> SceneSample:
        return sample.replace(color=sample.color / 255.0)


@dataclass(frozen=True)
class ShufflePoint:
    """Random order of the points."""

    def __call__(self, sample: SceneSample, generator: torch.Generator) -> SceneSample:
        return sample.select(torch.randperm(sample.num_points, generator=generator))
