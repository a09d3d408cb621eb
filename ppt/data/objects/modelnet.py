"""ModelNet40 in Point-MAE's layouts: the ``modelnet40_normal_resampled`` text files, the cached
``modelnet40_{split}_8192pts_fps.dat`` pickles Point-MAE writes from them, and the few-shot folds
``{way}way_{shot}shot/{fold}.pkl`` of Point-BERT.

::

    modelnet40_normal_resampled/
      modelnet40_shape_names.txt          one class name per line, in label order
      modelnet40_train.txt, modelnet40_test.txt   shape ids (airplane_0001, ...)
      airplane/airplane_0001.txt          rows "x,y,z,nx,ny,nz" (10,000 points)
      modelnet40_train_8192pts_fps.dat    pickle [list of (8192, 6) float32, list of (1,) int32 labels]
    ModelNetFewshot/5way10shot/0.pkl      pickle {"train": [(points, label, source label)], "test": [...]}

Pickles are read with :func:`ppt.data.load_array_pickle` (NumPy arrays and containers only).
Items are unit-sphere normalised xyz (normals dropped), as Point-MAE's ModelNet datasets give them.
"""

from __future__ import annotations

import pickle
from os import PathLike
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ppt.data.objects.dataset import ObjectDataset
from ppt.data.objects.sample import ObjectSample
from ppt.data.objects.transforms import ObjectTransform, normalize_unit_sphere
from ppt.data.safe_pickle import load_array_pickle
from ppt.ops import farthest_point_sample

__all__ = ["ModelNet40", "ModelNetFewShot", "MODELNET40_CLASSES"]

MODELNET40_CLASSES = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone", "cup", "curtain",
    "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp", "laptop", "mantel", "monitor",
    "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink", "sofa", "stairs", "stool", "table",
    "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox")
"""The 40 classes in the label order of ``modelnet40_shape_names.txt``."""


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _points_array(value: Any, source: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.ndim != 2 or value.shape[1] < 3 or value.dtype.kind != "f":
        got = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(f"{source}: expected a float array of shape (P, >=3), got {got}")
    return value


def _label_value(value: Any, source: str) -> int:
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"{source}: expected an integer label, got {value!r}")
    return int(array.reshape(-1)[0])


def _check_labels(labels: Sequence[int], num_classes: int, source: str) -> None:
    if labels and (min(labels) < 0 or max(labels) >= num_classes):
        raise ValueError(f"{source}: labels must lie in [0, {num_classes}), got [{min(labels)}, {max(labels)}]")


class ModelNet40(ObjectDataset):
    """One split of ModelNet40 (``modelnet40_normal_resampled``).

    Reads the cache ``modelnet40_{split}_{num_points}pts_fps.dat`` when it exists; otherwise reads the
    text files, keeps ``num_points`` of each by farthest point sampling (from the first point;
    Point-MAE starts at a random one) and, with ``write_cache=True``, writes the cache in Point-MAE's
    format so later runs (and Point-MAE itself) read it.

    Args:
        root: the ``modelnet40_normal_resampled`` folder.
        split: ``"train"`` or ``"test"``.
        num_points: points per object in the cache (Point-MAE: 8192; subsample to 1024 with a transform).
        transform, seed: see :class:`ppt.data.ObjectDataset`.
        write_cache: write the cache after reading the text files.
    """

    def __init__(self, root: str | PathLike, split: str = "train", num_points: int = 8192,
                 transform: ObjectTransform | None = None, *, seed: int = 0, write_cache: bool = False) -> None:
        super().__init__(transform, seed=seed)
        if split not in ("train", "test"):
            raise ValueError(f"ModelNet40 split must be 'train' or 'test', got {split!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ModelNet40: root {self.root} does not exist")
        self.split = split
        self.num_points = num_points
        self.class_names = tuple(_read_lines(self.root / "modelnet40_shape_names.txt"))
        split_list = self.root / f"modelnet40_{split}.txt"
        self.cache_path = self.root / f"modelnet40_{split}_{num_points}pts_fps.dat"
        if self.cache_path.is_file():
            points, labels = self._read_cache(self.cache_path)
            names = _read_lines(split_list) if split_list.is_file() else [f"{split}/{i:05d}" for i in range(len(points))]
            if len(names) != len(points):
                raise ValueError(f"{self.cache_path}: holds {len(points)} objects but {split_list} lists {len(names)}")
            _check_labels(labels, len(self.class_names), str(self.cache_path))
        else:
            names = _read_lines(split_list)
            points, labels = self._read_text_files(names)
            if write_cache:
                self._write_cache(points, labels)
        self.names = names
        self.points = [torch.from_numpy(np.ascontiguousarray(p[:, :3], dtype=np.float32)) for p in points]
        self.labels = labels

    @staticmethod
    def _read_cache(path: Path) -> tuple[list[np.ndarray], list[int]]:
        content = load_array_pickle(path)
        if not (isinstance(content, (list, tuple)) and len(content) == 2 and all(isinstance(c, list) for c in content)
                and len(content[0]) == len(content[1])):
            raise ValueError(f"{path}: expected [list of point arrays, list of labels] of equal length as Point-MAE "
                             "writes it")
        points = [_points_array(p, f"{path} object {i}") for i, p in enumerate(content[0])]
        labels = [_label_value(label, f"{path} object {i}") for i, label in enumerate(content[1])]
        return points, labels

    def _read_text_files(self, names: list[str]) -> tuple[list[np.ndarray], list[int]]:
        classes = {name: label for label, name in enumerate(self.class_names)}
        points, labels = [], []
        for name in tqdm(names, desc=f"ModelNet40 {self.split}: reading text files", leave=False):
            class_name = name.rsplit("_", 1)[0]
            if class_name not in classes:
                raise ValueError(f"ModelNet40: shape id {name!r} names class {class_name!r}, which is not in "
                                 f"{self.root / 'modelnet40_shape_names.txt'}")
            path = self.root / class_name / f"{name}.txt"
            if not path.is_file():
                raise FileNotFoundError(f"ModelNet40: {path} (listed in modelnet40_{self.split}.txt) does not exist")
            cloud = _points_array(np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2), str(path))
            if cloud.shape[0] < self.num_points:
                raise ValueError(f"{path}: has {cloud.shape[0]} points, fewer than num_points={self.num_points}")
            index = farthest_point_sample(torch.from_numpy(cloud[None, :, :3].copy()), self.num_points)[0]
            points.append(cloud[index.numpy()])
            labels.append(classes[class_name])
        return points, labels

    def _write_cache(self, points: list[np.ndarray], labels: list[int]) -> None:
        with self.cache_path.open("wb") as file:
            pickle.dump([points, [np.array([label], dtype=np.int32) for label in labels]], file)

    def __len__(self) -> int:
        return len(self.points)

    def load(self, index: int) -> ObjectSample:
        return ObjectSample(points=normalize_unit_sphere(self.points[index]), label=self.labels[index],
                            name=self.names[index])

    def __repr__(self) -> str:
        return f"ModelNet40(root={str(self.root)!r}, split={self.split!r}, objects={len(self)})"


class ModelNetFewShot(ObjectDataset):
    """One few-shot fold: ``root/{way}way_{shot}shot/{fold}.pkl`` (Point-BERT's ModelNet40 folds).

    Labels are the episode's ``0..way-1``; ``class_names`` gives the ModelNet40 class each stands for
    (from the source label stored with every object).
    """

    def __init__(self, root: str | PathLike, way: int, shot: int, fold: int, split: str = "train",
                 transform: ObjectTransform | None = None, *, seed: int = 0) -> None:
        super().__init__(transform, seed=seed)
        if split not in ("train", "test"):
            raise ValueError(f"ModelNetFewShot split must be 'train' or 'test', got {split!r}")
        self.path = Path(root) / f"{way}way_{shot}shot" / f"{fold}.pkl"
        self.split = split
        content = load_array_pickle(self.path)
        if not isinstance(content, dict) or split not in content or not isinstance(content[split], list):
            keys = sorted(content) if isinstance(content, dict) else type(content).__name__
            raise ValueError(f"{self.path}: expected a dict with a list under {split!r}, got {keys}")
        self.points, self.labels = [], []
        source_of_label: dict[int, int] = {}
        for i, entry in enumerate(content[split]):
            if not isinstance(entry, (tuple, list)) or len(entry) != 3:
                raise ValueError(f"{self.path} {split}[{i}]: expected (points, label, source label)")
            points = _points_array(entry[0], f"{self.path} {split}[{i}]")
            label = _label_value(entry[1], f"{self.path} {split}[{i}] label")
            source = _label_value(entry[2], f"{self.path} {split}[{i}] source label")
            if source_of_label.setdefault(label, source) != source:
                raise ValueError(f"{self.path}: label {label} stands for ModelNet40 classes "
                                 f"{source_of_label[label]} and {source}")
            self.points.append(torch.from_numpy(np.ascontiguousarray(points[:, :3], dtype=np.float32)))
            self.labels.append(label)
        _check_labels(self.labels, way, str(self.path))
        self.class_names = tuple(
            MODELNET40_CLASSES[source_of_label[label]] if 0 <= source_of_label.get(label, -1) < 40 else f"class_{label}"
            for label in range(way))

    def __len__(self) -> int:
        return len(self.points)

    def load(self, index: int) -> ObjectSample:
        return ObjectSample(points=normalize_unit_sphere(self.points[index]), label=self.labels[index],
                            name=f"{self.split}/{index:05d}")

    def __repr__(self) -> str:
        return f"ModelNetFewShot(path={str(self.path)!r}, split={self.split!r}, objects={len(self)})"
