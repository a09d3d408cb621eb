"""The base of the outdoor datasets: one LiDAR sweep per item, read from the files its dataset
ships (SemanticKITTI, nuScenes lidarseg) or from Pointcept's preprocessed layout (Waymo), as a
:class:`~ppt.data.SceneSample` with ``coord`` in metres (sensor or vehicle frame), ``strength``
``(N, 1)`` in ``[0, 1]``, ``segment`` in the dataset's learning-map classes (``-1`` = ignore)
and no colour.

A subclass lists the frames of a split (:meth:`SweepDataset.list_frames`), reads one
(:meth:`SweepDataset.read_frame`) and finds the frame of a sweep given by itself, as ``ppt
predict`` gets it (:meth:`SweepDataset.frame_of`); the base checks splits, labels and indices.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ppt.data.scenes.dataset import SceneSampleDataset, SceneTransform
from ppt.data.scenes.sample import IGNORE_INDEX, SceneSample

__all__ = ["SweepDataset", "SweepFrame", "RawSweep", "read_binary", "lookup_labels"]


@dataclass(frozen=True)
class SweepFrame:
    """Where one sweep lies: its ``name`` (unique in the dataset), the point file and the label
    file (``None`` when the dataset has none for it, as for test splits)."""

    name: str
    points: Path
    labels: Path | None


@dataclass(frozen=True)
class RawSweep:
    """One sweep as read: ``coord`` ``(N, 3)`` float32, ``strength`` ``(N, 1)`` float32 in
    ``[0, 1]``, ``segment`` ``(N,)`` int64 learning-map classes or ``None`` (unlabelled),
    ``instance`` ``(N,)`` int64 or ``None``."""

    coord: np.ndarray
    strength: np.ndarray
    segment: np.ndarray | None
    instance: np.ndarray | None = None


def read_binary(path: Path, dtype: np.dtype | type, columns: int, what: str) -> np.ndarray:
    """The raw little-endian array of ``path`` as ``(N, columns)`` (``(N,)`` for 1 column).

    Raises:
        FileNotFoundError: ``path`` is missing.
        ValueError: its size is not a whole number of ``columns`` values of ``dtype``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing ({what})")
    dtype = np.dtype(dtype).newbyteorder("<")
    row = dtype.itemsize * columns
    size = path.stat().st_size
    if size % row:
        raise ValueError(f"{path}: {size} bytes is not a whole number of {what} rows ({columns} x {dtype.name} = "
                         f"{row} bytes each); the file is truncated or not in this format")
    array = np.fromfile(path, dtype=dtype)
    return array.reshape(-1, columns) if columns > 1 else array


def lookup_labels(raw: np.ndarray, learning_map: dict[int, int], path: Path) -> np.ndarray:
    """``raw`` dataset ids through ``learning_map`` (id -> class, ``-1`` = ignore) as int64.

    Raises:
        ValueError: an id that the map does not know (the message names the file and the id).
    """
    table = np.full(max(learning_map) + 1, -2, dtype=np.int64)
    for raw_id, label in learning_map.items():
        table[raw_id] = label
    known = raw < table.shape[0]
    mapped = np.where(known, table[np.where(known, raw, 0)], -2)
    if (mapped == -2).any():
        unknown = np.unique(raw[mapped == -2])
        raise ValueError(f"{path}: label ids {unknown[:8].tolist()} are not in the dataset's learning map "
                         f"(known ids: {sorted(learning_map)})")
    return mapped


class SweepDataset(SceneSampleDataset):
    """LiDAR sweeps of one outdoor dataset.

    Args:
        root: the dataset folder (as the subclass documents).
        split: a split name of :attr:`splits` or a sequence of them.
        transform: applied to each sweep with a generator seeded from ``(seed, epoch, index)``.
        seed: base seed of the transforms' randomness.
        require_labels: every sweep must have its label file (checked for all here, so training
            stops before any work, naming the file); without it an unlabelled sweep reads as all
            ``-1``.
    """

    prompt_names: ClassVar[tuple[str, ...]]
    """The class names Pointcept's outdoor PPT configs give the language-guided head (its
    ``class_name`` entries: descriptions where a bare name is ambiguous), in label order."""
    splits: ClassVar[tuple[str, ...]]
    point_cloud_range: ClassVar[tuple[float, float, float, float, float, float] | None]
    """``(x_min, y_min, z_min, x_max, y_max, z_max)`` of Pointcept's single-dataset config's
    ``PointClip`` (``None``: that config does not clip)."""
    item_noun: ClassVar[str] = "sweeps"

    def __init__(self, root: str | PathLike, split: str | Sequence[str] = "train",
                 transform: SceneTransform | None = None, *, seed: int = 0, require_labels: bool = False) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: dataset root {self.root} does not exist")
        names = [split] if isinstance(split, str) else list(split)
        unknown = [name for name in names if name not in self.splits]
        if unknown or not names:
            raise ValueError(f"{type(self).__name__}: split must be one of {self.splits} or a list of them, "
                             f"got {split!r}")
        self.split = split
        super().__init__(transform, seed)
        self.frames = [frame for name in names for frame in self.list_frames(name)]
        if not self.frames:
            raise FileNotFoundError(f"{type(self).__name__}: no sweeps of split {split!r} in {self.root}")
        self.require_labels = require_labels
        if require_labels:
            unlabelled = [frame for frame in self.frames if frame.labels is None or not frame.labels.is_file()]
            if unlabelled:
                first = unlabelled[0]
                where = first.labels if first.labels is not None else f"the labels of {first.points}"
                raise FileNotFoundError(f"{type(self).__name__}: {where}: missing; {len(unlabelled)} of "
                                        f"{len(self.frames)} sweeps of split {split!r} have no labels, which "
                                        "training and evaluation need (unlabelled sweeps can only be predicted)")

    @abstractmethod
    def list_frames(self, split: str) -> list[SweepFrame]:
        """The sweeps of one split, in a fixed order."""

    @classmethod
    @abstractmethod
    def read_frame(cls, frame: SweepFrame) -> RawSweep:
        """One sweep's arrays (``segment=None`` when it has no label file)."""

    @classmethod
    @abstractmethod
    def frame_of(cls, path: Path) -> SweepFrame:
        """The frame of the sweep at ``path`` given by itself (a point file or frame folder of this
        dataset's format, in or out of a dataset tree), with its label file where the layout
        tells it.

        Raises:
            ValueError: ``path`` is not a sweep of this dataset's format (the message says what is).
        """

    @classmethod
    def recognises(cls, path: str | PathLike) -> bool:
        """True when ``path`` is laid out as a sweep of this dataset (``ppt predict`` picks a
        multi-dataset checkpoint's dataset by it)."""
        return False

    @classmethod
    def read_sweep(cls, path: str | PathLike) -> SceneSample:
        """The sweep at ``path`` (:meth:`frame_of`) as stored, labelled where its label file is found.

        Raises:
            FileNotFoundError: ``path`` or a file of its frame is missing.
            ValueError: ``path`` is not this dataset's format, or a file is malformed.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        return cls.read_sample(cls.frame_of(path))

    @classmethod
    def prediction_files(cls, out: Path, name: str, prediction: np.ndarray) -> list[Path]:
        """Write ``prediction`` (``(N,)`` classes) in the dataset's own label format under ``out``, if
        it has one that ppt writes; the paths written."""
        return []

    @classmethod
    def read_sample(cls, frame: SweepFrame, *, require_labels: bool = False) -> SceneSample:
        """The sweep of ``frame`` as stored, checked: finite coordinates, one row per point in every
        array, labels in ``[-1, classes)``; without labels (and not ``require_labels``) all ``-1``."""
        raw = cls.read_frame(frame)
        n = raw.coord.shape[0]
        if not np.isfinite(raw.coord).all():
            raise ValueError(f"{frame.points}: coordinates must be finite")
        if raw.segment is None and require_labels:
            raise FileNotFoundError(f"{cls.__name__}: sweep {frame.name} has no labels")
        for field, array in (("strength", raw.strength), ("segment", raw.segment), ("instance", raw.instance)):
            if array is not None and array.shape[0] != n:
                raise ValueError(f"sweep {frame.name}: {field} has {array.shape[0]} rows for {n} points "
                                 f"({frame.labels if field == 'segment' else frame.points})")
        segment = raw.segment
        if segment is not None and n and (segment.min() < IGNORE_INDEX or segment.max() >= len(cls.class_names)):
            raise ValueError(f"{frame.labels}: labels must lie in [{IGNORE_INDEX}, {len(cls.class_names)}), got "
                             f"[{segment.min()}, {segment.max()}]")
        unlabelled = torch.full((n,), IGNORE_INDEX, dtype=torch.int64)

        def tensor(array: np.ndarray | None, dtype: torch.dtype, default=None):
            return default if array is None else torch.from_numpy(np.ascontiguousarray(array)).to(dtype)

        return SceneSample(coord=tensor(raw.coord, torch.float32), color=None, normal=None,
                           strength=tensor(raw.strength, torch.float32).reshape(n, 1),
                           segment=tensor(raw.segment, torch.int64, unlabelled),
                           instance=tensor(raw.instance, torch.int64, unlabelled.clone()),
                           name=frame.name, condition=cls.condition)

    def load(self, index: int) -> SceneSample:
        """Sweep ``index`` as stored, without the transform."""
        return self.read_sample(self.frames[index], require_labels=self.require_labels)

    def __len__(self) -> int:
        return len(self.frames)
