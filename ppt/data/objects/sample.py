"""``ObjectSample``: one object point cloud with its class, and the batch the object datasets collate to.

Object datasets yield samples; transforms (:mod:`ppt.data.objects.transforms`) map them to new ones;
:func:`collate_objects` stacks equally sized samples into an :class:`ObjectBatch`
``(points (B, N, 3), labels (B,))`` that the object classifiers take.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

__all__ = ["ObjectSample", "ObjectBatch", "collate_objects"]


@dataclass(frozen=True)
class ObjectSample:
    """An object's points.

    Attributes:
        points: ``(N, 3)`` float32 coordinates.
        label: class index in the dataset's ``class_names`` (``-1`` when the data has no class).
        name: the object's name in its dataset (file stem, shape id, or ``<split>/<row>``).
    """

    points: Tensor
    label: int
    name: str

    def __post_init__(self) -> None:
        points = self.points
        if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != 3 or points.dtype != torch.float32:
            got = f"{points.dtype} of shape {tuple(points.shape)}" if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(f"ObjectSample {self.name!r}: points must be float32 of shape (N, 3), got {got}")
        if not isinstance(self.label, int) or isinstance(self.label, bool) or self.label < -1:
            raise ValueError(f"ObjectSample {self.name!r}: label must be an int >= -1, got {self.label!r}")

    def with_points(self, points: Tensor) -> ObjectSample:
        """The same object with other points."""
        return dataclasses.replace(self, points=points)


class ObjectBatch(NamedTuple):
    """``points`` ``(B, N, 3)`` float32 and ``labels`` ``(B,)`` int64; unpacks as ``points, labels``."""

    points: Tensor
    labels: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ObjectBatch:
        return ObjectBatch(self.points.to(device, non_blocking=non_blocking),
                           self.labels.to(device, non_blocking=non_blocking))


def collate_objects(samples: Sequence[ObjectSample]) -> ObjectBatch:
    """Stack samples of equal point count (subsample them to one size first, e.g. with FPS)."""
    if not samples:
        raise ValueError("collate_objects: got no samples")
    counts = {sample.points.shape[0] for sample in samples}
    if len(counts) != 1:
        raise ValueError(f"collate_objects: samples have different point counts {sorted(counts)}; subsample them "
                         "to one size first (e.g. ppt.data.FarthestPointSubsample)")
    points = torch.stack([sample.points for sample in samples])
    labels = torch.tensor([sample.label for sample in samples], dtype=torch.int64)
    return ObjectBatch(points, labels)
