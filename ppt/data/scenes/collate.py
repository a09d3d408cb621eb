"""Collate scene samples into one batch: points concatenated, scenes delimited by offsets."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ppt.data.scenes.sample import SceneSample, mask_labels
from ppt.sparse import SparseTensor

__all__ = ["SceneBatch", "collate_scenes", "FEATURE_FIELDS", "FEATURE_WIDTHS", "feature_width"]

FEATURE_WIDTHS = {"coord": 3, "color": 3, "normal": 3, "strength": 1}
"""Per-point fields that can make up the input features (``feat_keys``) and their widths."""
FEATURE_FIELDS = tuple(FEATURE_WIDTHS)


def feature_width(feat_keys: Sequence[str]) -> int:
    """Width of the input features made of ``feat_keys`` (the network's ``in_channels``)."""
    unknown = [key for key in feat_keys if key not in FEATURE_WIDTHS]
    if unknown:
        raise ValueError(f"feat_keys: {unknown[0]!r} is not one of {FEATURE_FIELDS}")
    return sum(FEATURE_WIDTHS[key] for key in feat_keys)


@dataclass(frozen=True)
class SceneBatch:
    """``B`` scenes with ``N`` points in all, concatenated in scene order.

    Attributes:
        coord: ``(N, 3)`` float32.
        grid_coord: ``(N, 3)`` int32 voxel indices within each scene.
        feat: ``(N, C)`` float32 input features (the ``feat_keys`` fields side by side).
        segment: ``(N,)`` int64 labels, ``-1`` = ignore.
        instance: ``(N,)`` int64.
        offset: ``(B,)`` int64 cumulative point counts (Pointcept's ``offset``): scene ``b``
            holds rows ``offset[b-1]:offset[b]``.
        names, conditions: per scene.
        index: ``(N,)`` int64 rows in each fragment's own scene (test-time fragments), or None.
        inverse: ``(M,)`` int64 rows of this batch standing for every point of the scenes before
            grid sampling (``-1`` = none), or None; ``logits[inverse]`` are whole-scene predictions.
        origin_segment: ``(M,)`` int64 labels of those points, or None.
        origin_offset: ``(B,)`` int64 cumulative counts of those points, or None.
        labelled: ``(N,)`` bool points whose label may be used (limited annotations), or None
            when every label may; :attr:`labelled_segment` is what losses train on.
    """

    coord: Tensor
    grid_coord: Tensor
    feat: Tensor
    segment: Tensor
    instance: Tensor
    offset: Tensor
    names: tuple[str, ...]
    conditions: tuple[str, ...]
    index: Tensor | None = None
    inverse: Tensor | None = None
    origin_segment: Tensor | None = None
    origin_offset: Tensor | None = None
    labelled: Tensor | None = None

    @property
    def labelled_segment(self) -> Tensor:
        """``segment`` with ``-1`` outside ``labelled``: the labels a loss may train on."""
        return mask_labels(self.segment, self.labelled)

    @property
    def batch_size(self) -> int:
        return self.offset.shape[0]

    @property
    def batch(self) -> Tensor:
        """``(N,)`` int64 scene of every point."""
        counts = torch.diff(self.offset, prepend=self.offset.new_zeros(1))
        return torch.repeat_interleave(torch.arange(self.batch_size, device=self.offset.device), counts)

    def condition_index(self, conditions: Sequence[str]) -> Tensor:
        """``(N,)`` int64 position of every point's scene condition in ``conditions`` (the
        per-point condition ids of a mixed batch for Point Prompt Training)."""
        unknown = sorted(set(self.conditions) - set(conditions))
        if unknown:
            raise ValueError(f"SceneBatch.condition_index: condition {unknown[0]!r} is not in {tuple(conditions)}")
        per_scene = torch.tensor([list(conditions).index(c) for c in self.conditions], device=self.offset.device)
        return per_scene[self.batch]

    def sparse_tensor(self) -> SparseTensor:
        """The input of a sparse-conv network: ``feat`` at sites ``[b, x, y, z]`` (int32)."""
        indices = torch.cat([self.batch.to(torch.int32)[:, None], self.grid_coord], dim=1)
        return SparseTensor(self.feat, indices, batch_size=self.batch_size)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SceneBatch:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(self, **{
            field.name: value.to(device, non_blocking=non_blocking)
            for field in dataclasses.fields(self) if isinstance(value := getattr(self, field.name), Tensor)})

    def pin_memory(self) -> SceneBatch:
        """Page-locked copy (called by ``DataLoader(pin_memory=True)``)."""
        return dataclasses.replace(self, **{
            field.name: value.pin_memory()
            for field in dataclasses.fields(self) if isinstance(value := getattr(self, field.name), Tensor)})


def collate_scenes(samples: Sequence[SceneSample], feat_keys: Sequence[str] = ("color", "normal")) -> SceneBatch:
    """Concatenate grid-sampled ``samples`` into a :class:`SceneBatch`.

    Args:
        samples: scenes that went through :class:`~ppt.data.scenes.transforms.GridSample` or
            :class:`~ppt.data.scenes.transforms.GridFragments` (they carry ``grid_coord``).
        feat_keys: fields concatenated into ``feat``, from :data:`FEATURE_FIELDS`; Pointcept uses
            ``("color", "normal")`` for ScanNet and Structured3D, ``("coord", "color")`` for S3DIS,
            ``("coord", "strength")`` for LiDAR sweeps.
            Use with a DataLoader as ``collate_fn=functools.partial(collate_scenes, feat_keys=...)``.
    """
    if len(samples) == 0:
        raise ValueError("collate_scenes: no samples")
    unknown = [key for key in feat_keys if key not in FEATURE_FIELDS]
    if unknown or not feat_keys:
        raise ValueError(f"collate_scenes: feat_keys must be a non-empty sequence of {FEATURE_FIELDS}, got {tuple(feat_keys)}")
    for sample in samples:
        if sample.grid_coord is None:
            raise ValueError(f"collate_scenes: scene {sample.name!r} has no grid_coord; apply GridSample or "
                             "GridFragments before collating")
        missing = [key for key in feat_keys if getattr(sample, key) is None]
        if missing:
            raise ValueError(f"collate_scenes: scene {sample.name!r} has no {missing[0]} for feat_keys={tuple(feat_keys)}")
    for field in ("index", "inverse"):
        present = [getattr(sample, field) is not None for sample in samples]
        if any(present) and not all(present):
            raise ValueError(f"collate_scenes: some samples have {field} and some do not; batch them separately")

    counts = torch.tensor([sample.num_points for sample in samples], dtype=torch.int64)
    offset = torch.cumsum(counts, 0)

    def cat(field: str) -> Tensor:
        return torch.cat([getattr(sample, field) for sample in samples])

    extras = {}
    if samples[0].index is not None:
        extras["index"] = cat("index")
    if samples[0].inverse is not None:
        starts = offset - counts
        extras["inverse"] = torch.cat([torch.where(s.inverse >= 0, s.inverse + start, -1)
                                       for s, start in zip(samples, starts.tolist())])
        extras["origin_segment"] = cat("origin_segment")
        extras["origin_offset"] = torch.cumsum(torch.tensor([s.inverse.shape[0] for s in samples]), 0)
    if any(sample.labelled is not None for sample in samples):  # a scene without a mask is labelled everywhere
        extras["labelled"] = torch.cat([torch.ones(s.num_points, dtype=torch.bool) if s.labelled is None
                                        else s.labelled for s in samples])
    feat = torch.cat([torch.cat([getattr(sample, key) for key in feat_keys], dim=1) for sample in samples])
    return SceneBatch(coord=cat("coord"), grid_coord=cat("grid_coord"), feat=feat, segment=cat("segment"),
                      instance=cat("instance"), offset=offset, names=tuple(s.name for s in samples),
                      conditions=tuple(s.condition for s in samples), **extras)
