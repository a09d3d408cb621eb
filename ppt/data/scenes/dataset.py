"""Scene datasets in Pointcept's preprocessed layout: one folder per scene holding ``coord.npy``
``(N, 3)``, ``color.npy`` ``(N, 3)`` (0-255), ``normal.npy`` ``(N, 3)``, a label file
(``segment.npy``; ScanNet: ``segment20.npy``) and optionally ``instance.npy``, grouped in split
folders. Subclasses name the classes, the split folders and where the scenes lie in them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ppt.data.scenes.sample import IGNORE_INDEX, SceneSample
from ppt.data.seeded_dataset import SeededDataset

__all__ = ["SceneDataset", "SceneTransform", "read_scene_folder"]

SceneTransform = Callable[[SceneSample, torch.Generator], SceneSample]
"""A transform maps a sample and a generator (its only source of randomness) to a new sample."""


def _load_array(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: expected one .npy array, got {type(array).__name__}")
    return array


def _points_by(array: np.ndarray, path: Path, columns: int | None, kind: str) -> np.ndarray:
    """``array`` as ``(N, columns)`` (or ``(N,)`` when columns is None, accepting ``(N, 1)``)."""
    if columns is None and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    ok = array.ndim == 1 if columns is None else (array.ndim == 2 and array.shape[1] == columns)
    if not ok:
        expected = "(N,) or (N, 1)" if columns is None else f"(N, {columns})"
        raise ValueError(f"{path}: expected {kind} of shape {expected}, got {array.shape}")
    numeric = np.issubdtype(array.dtype, np.integer) if kind == "integer labels" else np.issubdtype(array.dtype, np.number)
    if not numeric:
        raise ValueError(f"{path}: expected {kind}, got dtype {array.dtype}")
    return array


def _missing_labels_message(folder: Path, label_files: Sequence[str]) -> str:
    """Why a scene that must be labelled cannot be used: it names the label file(s) expected."""
    return (f"{folder / label_files[0]}: missing; this scene has none of the label files "
            f"{', '.join(label_files)}, which training and evaluation need (unlabelled scenes, like test "
            "splits, can only be predicted: ppt predict)")


def read_scene_folder(folder: str | PathLike, *, name: str, condition: str, num_classes: int,
                      label_files: Sequence[str] = ("segment.npy",), require_labels: bool = False) -> SceneSample:
    """Read one scene folder of Pointcept's layout into a :class:`SceneSample`.

    ``coord.npy`` and ``color.npy`` are required; ``normal.npy`` is optional (``normal=None``);
    the first of ``label_files`` present gives ``segment`` (all ``-1`` when none is, as for test
    splits, unless ``require_labels``); ``instance.npy`` is optional (all ``-1``).

    Raises:
        FileNotFoundError: a required file is missing (the message names it), including the
            label file when ``require_labels``.
        ValueError: a file is unreadable or corrupt, has the wrong shape or dtype, non-finite
            coordinates, labels outside ``[-1, num_classes)``, or the arrays disagree in length.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"scene folder {folder} does not exist")
    arrays: dict[str, tuple[Path, np.ndarray]] = {}
    for field, file, columns, kind, required in (
            ("coord", "coord.npy", 3, "coordinates", True),
            ("color", "color.npy", 3, "colours", True),
            ("normal", "normal.npy", 3, "normals", False),
            ("instance", "instance.npy", None, "integer labels", False)):
        path = folder / file
        if not path.is_file():
            if required:
                raise FileNotFoundError(f"{path}: missing (a scene folder holds coord.npy, color.npy, normal.npy, "
                                        f"{' or '.join(label_files)} and optionally instance.npy)")
            continue
        arrays[field] = (path, _points_by(_load_array(path), path, columns, kind))
    label_path = next((folder / file for file in label_files if (folder / file).is_file()), None)
    if label_path is None and require_labels:
        raise FileNotFoundError(_missing_labels_message(folder, label_files))
    if label_path is not None:
        arrays["segment"] = (label_path, _points_by(_load_array(label_path), label_path, None, "integer labels"))

    lengths = {path.name: array.shape[0] for path, array in arrays.values()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"scene {folder}: arrays disagree in length ({', '.join(f'{k}: {v}' for k, v in lengths.items())}); "
                         "every file must have one row per point")
    coord_path, coord = arrays["coord"]
    if not np.isfinite(coord).all():
        raise ValueError(f"{coord_path}: coordinates must be finite")
    n = coord.shape[0]
    if "segment" in arrays:
        path, segment = arrays["segment"]
        if n and (segment.min() < IGNORE_INDEX or segment.max() >= num_classes):
            raise ValueError(f"{path}: labels must lie in [{IGNORE_INDEX}, {num_classes}) for this dataset's "
                             f"{num_classes} classes, got [{segment.min()}, {segment.max()}]")

    def tensor(field: str, dtype: torch.dtype, default=None):
        if field not in arrays:
            return default
        return torch.from_numpy(np.ascontiguousarray(arrays[field][1])).to(dtype)

    unlabelled = torch.full((n,), IGNORE_INDEX, dtype=torch.int64)
    return SceneSample(
        coord=tensor("coord", torch.float32), color=tensor("color", torch.float32), normal=tensor("normal", torch.float32),
        segment=tensor("segment", torch.int64, unlabelled), instance=tensor("instance", torch.int64, unlabelled.clone()),
        name=name, condition=condition)


class SceneSampleDataset(SeededDataset):
    """Base of the datasets whose items are :class:`SceneSample` s (indoor scenes, LiDAR sweeps):
    item ``index`` is :meth:`load` ``(index)`` through the transform, with the item's generator."""

    class_names: ClassVar[tuple[str, ...]]
    # Named groups of classes whose mean IoU evaluation reports besides the overall one
    # (ScanNet200's head / common / tail); none by default.
    class_groups: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    condition: ClassVar[str]
    ignore_index: ClassVar[int] = IGNORE_INDEX
    item_noun: ClassVar[str] = "scenes"  # what an item is called in messages

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def load(self, index: int) -> SceneSample:
        """Item ``index`` as stored, without the transform."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> SceneSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {len(self)} {self.item_noun}")
        index %= len(self)
        sample = self.load(index)
        return sample if self.transform is None else self.transform(sample, self.generator(index))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, {self.item_noun}={len(self)})"


class SceneDataset(SceneSampleDataset):
    """Base of the scene datasets: lists scene folders of the chosen splits and reads them.

    Args:
        root: the dataset folder (the parent of the split folders).
        split: a split name or a sequence of them (see the subclass for its names).
        transform: applied to each loaded sample with a generator seeded from
            ``(seed, epoch, index)``, so an item is the same whichever worker loads it.
        seed: base seed of the transforms' randomness.
        require_labels: every scene must hold one of ``label_files`` (checked for all scenes
            here, so training or evaluation stops before any work, naming the file). Without
            it a scene without labels reads as all ``-1`` (ignored), as test splits do.
        scenes: only the scenes of these names (:meth:`scene_name`), in the split's order: the
            data-efficient benchmark's limited reconstructions
            (:func:`~ppt.data.scenes.data_efficient.read_scene_list`). A name the split lacks is
            an error.
        labelled_points: scene name -> indices of the points whose labels may be used (rows of
            the scene as stored): the benchmark's limited annotations
            (:func:`~ppt.data.scenes.data_efficient.read_labelled_points`). Every scene sets
            :attr:`SceneSample.labelled` from it (each scene needs an entry); ``segment`` keeps
            the stored labels, :attr:`SceneSample.labelled_segment` is what losses and metrics see.
    """

    label_files: ClassVar[tuple[str, ...]] = ("segment.npy",)
    # How a scene of this dataset is recognised out of its dataset (:meth:`recognises`): a pattern
    # of "<parent folder>/<scene>" as Pointcept's preprocessing names them, and files only it writes.
    scene_pattern: ClassVar[re.Pattern | None] = None
    distinctive_files: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def recognises(cls, path: str | PathLike) -> bool:
        """True when ``path`` (a scene folder, or a point-cloud file named after a scene) is laid
        out as a scene of this dataset: named like one, or holding a file only this dataset has."""
        path = Path(path)
        stem = path.name if path.is_dir() else path.stem
        named = cls.scene_pattern is not None and cls.scene_pattern.search(f"{path.parent.name}/{stem}") is not None
        return named or (path.is_dir() and any((path / file).is_file() for file in cls.distinctive_files))

    def __init__(self, root: str | PathLike, split: str | Sequence[str] = "train",
                 transform: SceneTransform | None = None, *, seed: int = 0, require_labels: bool = False,
                 scenes: Sequence[str] | None = None, labelled_points: Mapping[str, np.ndarray] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: dataset root {self.root} does not exist")
        self.split = split
        super().__init__(transform, seed)
        folders = self.split_folders(split)
        for folder in folders:
            if not folder.is_dir():
                present = sorted(p.name for p in self.root.iterdir() if p.is_dir())
                raise FileNotFoundError(f"{type(self).__name__}: split folder {folder} does not exist "
                                        f"(split={split!r}; folders in {self.root}: {present})")
        self.scene_paths = [path for folder in folders for path in self.scenes_in(folder)]
        if not self.scene_paths:
            raise FileNotFoundError(f"{type(self).__name__}: no scenes in {', '.join(map(str, folders))}")
        if scenes is not None:
            by_name = {self.scene_name(path): path for path in self.scene_paths}
            absent = [name for name in scenes if name not in by_name]
            if absent:
                raise FileNotFoundError(f"{type(self).__name__}: scene {absent[0]!r} of the scene list is not in split "
                                        f"{split!r} of {self.root} ({len(absent)} of {len(scenes)} listed scenes absent)")
            wanted = set(scenes)
            self.scene_paths = [path for path in self.scene_paths if self.scene_name(path) in wanted]
        self.labelled_points = None if labelled_points is None else dict(labelled_points)
        if self.labelled_points is not None:
            missing = [self.scene_name(path) for path in self.scene_paths
                       if self.scene_name(path) not in self.labelled_points]
            if missing:
                raise ValueError(f"{type(self).__name__}: labelled_points has no entry for scene {missing[0]!r} "
                                 f"({len(missing)} of {len(self.scene_paths)} scenes of split {split!r} lack one)")
        self.require_labels = require_labels
        if require_labels:
            unlabelled = [path for path in self.scene_paths
                          if not any((path / file).is_file() for file in self.label_files)]
            if unlabelled:
                others = f"; {len(unlabelled)} of {len(self)} scenes of split {split!r} have no labels" \
                    if len(unlabelled) > 1 else ""
                raise FileNotFoundError(f"{type(self).__name__}: {_missing_labels_message(unlabelled[0], self.label_files)}"
                                        f"{others}")

    def split_folders(self, split: str | Sequence[str]) -> list[Path]:
        """The folders of ``split`` (default: ``root/<name>`` for each name)."""
        names = [split] if isinstance(split, str) else list(split)
        return [self.root / name for name in names]

    def scenes_in(self, folder: Path) -> list[Path]:
        """The scene folders of one split folder, sorted (default: its sub-folders)."""
        return sorted(path for path in folder.iterdir() if path.is_dir())

    def scene_name(self, path: Path) -> str:
        return path.name

    def load(self, index: int) -> SceneSample:
        """Item ``index`` as stored (with ``labelled`` set under limited annotations), without the transform."""
        path = self.scene_paths[index]
        sample = read_scene_folder(path, name=self.scene_name(path), condition=self.condition,
                                   num_classes=self.num_classes, label_files=self.label_files,
                                   require_labels=self.require_labels)
        if self.labelled_points is None:
            return sample
        indices = torch.from_numpy(np.asarray(self.labelled_points[sample.name], dtype=np.int64))
        if indices.numel() and int(indices.max()) >= sample.num_points:
            raise ValueError(f"{type(self).__name__}: labelled point index {int(indices.max())} of scene {sample.name!r} "
                             f"is out of range for its {sample.num_points} points")
        labelled = torch.zeros(sample.num_points, dtype=torch.bool)
        labelled[indices] = True
        return sample.replace(labelled=labelled)

    def __len__(self) -> int:
        return len(self.scene_paths)
