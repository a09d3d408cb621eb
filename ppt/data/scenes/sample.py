"""``SceneSample``: one scene (an indoor room or a LiDAR sweep, or a crop / voxel sample of it) as typed
per-point arrays.

Datasets yield these, transforms map them to new ones (never in place), and
:func:`ppt.data.collate_scenes` concatenates them into a :class:`ppt.data.SceneBatch`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SceneSample", "IGNORE_INDEX", "mask_labels"]

IGNORE_INDEX = -1
"""Label of points without a class (unlabelled, or a class outside the dataset's label set)."""

# Fields with one row per point: indexed together by ``SceneSample.select``.
_PER_POINT = ("coord", "color", "normal", "segment", "instance", "grid_coord", "index", "labelled", "strength")


def mask_labels(segment: Tensor, labelled: Tensor | None) -> Tensor:
    """``segment`` with :data:`IGNORE_INDEX` wherever ``labelled`` is False (``labelled`` None:
    ``segment`` itself): the labels that training and metrics may use under limited annotations."""
    return segment if labelled is None else torch.where(labelled, segment, IGNORE_INDEX)


@dataclass(frozen=True)
class SceneSample:
    """A scene's points. ``N`` rows per per-point field.

    Attributes:
        coord: ``(N, 3)`` float32 coordinates in metres (z up).
        color: ``(N, 3)`` float32 RGB, in ``[0, 255]`` as stored, in ``[0, 1]`` after
            :class:`ppt.data.scenes.transforms.NormalizeColor`; ``None`` for LiDAR sweeps.
        normal: ``(N, 3)`` float32 unit normals, or ``None`` when the scene has none.
        segment: ``(N,)`` int64 class index in the dataset's native order, ``-1`` = ignore.
        instance: ``(N,)`` int64 object id, ``-1`` = none.
        name: scene name (unique within the dataset).
        condition: the dataset the scene comes from (``"ScanNet"``, ``"S3DIS"``, ...), the
            condition of Point Prompt Training.
        grid_coord: ``(N, 3)`` int32 voxel indices, set by grid sampling.
        index: ``(N,)`` int64 row of each point in the scene it was taken from, set by
            :class:`ppt.data.scenes.transforms.GridFragments` (test-time fragments).
        inverse: ``(M,)`` int64: for each of the ``M`` points of the scene before grid sampling,
            the row of this sample that stands for it (its voxel's point), ``-1`` when no row
            does (dropped by a later crop). Set by ``GridSample(return_inverse=True)``.
        origin_segment: ``(M,)`` int64 labels of those ``M`` points (for whole-scene evaluation).
        labelled: ``(N,)`` bool, the points whose label may be used (the annotated points of the
            data-efficient benchmark's limited annotations), or ``None``: every point's label
            may. :attr:`labelled_segment` applies it; grid sampling and dropout keep these points.
        strength: ``(N, 1)`` float32 LiDAR return intensity in ``[0, 1]`` (:mod:`ppt.data.sweeps`;
            Pointcept's ``strength``), or ``None`` for scenes without one.
    """

    coord: Tensor
    color: Tensor | None
    normal: Tensor | None
    segment: Tensor
    instance: Tensor
    name: str
    condition: str
    grid_coord: Tensor | None = None
    index: Tensor | None = None
    inverse: Tensor | None = None
    origin_segment: Tensor | None = None
    labelled: Tensor | None = None
    strength: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.coord.shape[0] if self.coord.dim() == 2 else -1
        expected = {
            "coord": ((n, 3), (torch.float32,)),
            "color": ((n, 3), (torch.float32,)),
            "normal": ((n, 3), (torch.float32,)),
            "segment": ((n,), (torch.int64,)),
            "instance": ((n,), (torch.int64,)),
            "grid_coord": ((n, 3), (torch.int32,)),
            "index": ((n,), (torch.int64,)),
            "labelled": ((n,), (torch.bool,)),
            "strength": ((n, 1), (torch.float32,)),
        }
        for field, (shape, dtypes) in expected.items():
            value = getattr(self, field)
            if value is None:
                continue
            if not isinstance(value, Tensor) or tuple(value.shape) != shape or value.dtype not in dtypes:
                got = f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"SceneSample {self.name!r}: {field} must be {dtypes[0]} of shape "
                                 f"{tuple('N' if s == n else s for s in shape)} with N = {n}, got {got}")
        if (self.inverse is None) != (self.origin_segment is None):
            raise ValueError(f"SceneSample {self.name!r}: inverse and origin_segment go together")
        if self.inverse is not None:
            if self.inverse.dtype != torch.int64 or self.inverse.dim() != 1:
                raise ValueError(f"SceneSample {self.name!r}: inverse must be (M,) int64")
            if self.origin_segment.shape != self.inverse.shape or self.origin_segment.dtype != torch.int64:
                raise ValueError(f"SceneSample {self.name!r}: origin_segment must be int64 of the inverse's shape "
                                 f"{tuple(self.inverse.shape)}, got {tuple(self.origin_segment.shape)}")

    @property
    def num_points(self) -> int:
        return self.coord.shape[0]

    @property
    def labelled_segment(self) -> Tensor:
        """``segment`` with ``-1`` outside ``labelled``: what a loss or a metric may see."""
        return mask_labels(self.segment, self.labelled)

    def replace(self, **changes) -> SceneSample:
        """A copy with ``changes`` applied (validated like a new sample)."""
        return dataclasses.replace(self, **changes)

    def select(self, rows: Tensor, **changes) -> SceneSample:
        """The points at ``rows`` ((K,) int64, distinct), in that order, with ``changes`` applied.

        Every per-point field is indexed; ``inverse`` is remapped to the new rows (``-1`` for
        points whose row was not selected).
        """
        fields = {name: getattr(self, name)[rows] for name in _PER_POINT
                  if getattr(self, name) is not None and name not in changes}
        if self.inverse is not None and "inverse" not in changes:
            new_row = torch.full((self.num_points,), -1, dtype=torch.int64, device=rows.device)
            new_row[rows] = torch.arange(rows.shape[0], device=rows.device)
            fields["inverse"] = torch.where(self.inverse >= 0, new_row[self.inverse.clamp(min=0)], -1)
        return dataclasses.replace(self, **fields, **changes)
