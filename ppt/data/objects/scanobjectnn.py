"""ScanObjectNN (Uy et al., ICCV 2019) in its published h5 files, as Point-MAE and DAPT read them.

Layout (the variants differ by folder and file name)::

    ScanObjectNN/
      main_split/        training_objectdataset.h5, test_objectdataset.h5                 OBJ_BG
                         training_objectdataset_augmentedrot_scale75.h5, test_...           PB_T50_RS
      main_split_nobg/   training_objectdataset.h5, test_objectdataset.h5                 OBJ_ONLY

Each file holds ``data`` ``(N, 2048, 3)`` float32, ``label`` ``(N,)`` (class index) and ``mask``
``(N, 2048)`` (``-1`` on background points; not used for classification).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch

from ppt.data.objects.dataset import ObjectDataset
from ppt.data.objects.sample import ObjectSample
from ppt.data.objects.transforms import ObjectTransform

__all__ = ["ScanObjectNN", "SCANOBJECTNN_CLASSES", "SCANOBJECTNN_VARIANTS", "scanobjectnn_file",
           "write_scanobjectnn_h5"]

SCANOBJECTNN_CLASSES = ("bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table",
                        "bed", "pillow", "sink", "sofa", "toilet")
"""The 15 classes in label order."""

ScanObjectNNVariant = Literal["OBJ_BG", "OBJ_ONLY", "PB_T50_RS"]
# variant -> (folder, file-name suffix)
SCANOBJECTNN_VARIANTS: dict[str, tuple[str, str]] = {
    "OBJ_BG": ("main_split", ""),
    "OBJ_ONLY": ("main_split_nobg", ""),
    "PB_T50_RS": ("main_split", "_augmentedrot_scale75"),
}
_SPLIT_PREFIX = {"train": "training", "test": "test"}


def scanobjectnn_file(variant: str, split: str) -> Path:
    """The official path of a variant's split file relative to the ScanObjectNN folder, e.g.
    ``main_split/training_objectdataset_augmentedrot_scale75.h5`` for ``("PB_T50_RS", "train")``."""
    if variant not in SCANOBJECTNN_VARIANTS:
        raise ValueError(f"ScanObjectNN variant must be one of {sorted(SCANOBJECTNN_VARIANTS)}, got {variant!r}")
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"ScanObjectNN split must be 'train' or 'test', got {split!r}")
    folder, suffix = SCANOBJECTNN_VARIANTS[variant]
    return Path(folder) / f"{_SPLIT_PREFIX[split]}_objectdataset{suffix}.h5"


def write_scanobjectnn_h5(path: str | PathLike, points: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> None:
    """Write ``data`` (float32), ``label`` (int64) and ``mask`` (int64, ``-1`` = background) as the
    published files store them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        file.create_dataset("data", data=np.asarray(points, dtype=np.float32))
        file.create_dataset("label", data=np.asarray(labels, dtype=np.int64))
        file.create_dataset("mask", data=np.asarray(mask, dtype=np.int64))


class ScanObjectNN(ObjectDataset):
    """One split of one ScanObjectNN variant, read into memory.

    Args:
        root: the ScanObjectNN folder (holding ``main_split/`` and ``main_split_nobg/``), or the
            variant's own folder (``main_split`` / ``main_split_nobg``); for PB_T50_RS, whose file
            names are unique, also any folder holding its two files.
        split: ``"train"`` or ``"test"``.
        variant: ``"PB_T50_RS"`` (hardest), ``"OBJ_BG"`` or ``"OBJ_ONLY"``.
        transform, seed: see :class:`ppt.data.ObjectDataset`.

    Items are the stored clouds (2048 points, not normalised, as Point-MAE uses them).
    """

    class_names = SCANOBJECTNN_CLASSES

    def __init__(self, root: str | PathLike, split: str = "train", variant: ScanObjectNNVariant = "PB_T50_RS",
                 transform: ObjectTransform | None = None, *, seed: int = 0) -> None:
        super().__init__(transform, seed=seed)
        self.root = Path(root)
        self.split = split
        self.variant = variant
        self.path = self._find_file(self.root, variant, split)
        self.points, self.labels = self._read(self.path)

    @staticmethod
    def _find_file(root: Path, variant: str, split: str) -> Path:
        relative = scanobjectnn_file(variant, split)
        candidates = [root / relative]
        if root.name == relative.parent.name or variant == "PB_T50_RS":
            candidates.append(root / relative.name)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"ScanObjectNN {variant} {split}: none of {', '.join(map(str, candidates))} exists "
                                f"(root should be the ScanObjectNN folder holding {relative.parent}/)")

    @staticmethod
    def _read(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        with h5py.File(path, "r") as file:
            missing = [key for key in ("data", "label") if key not in file]
            if missing:
                raise ValueError(f"{path}: missing dataset(s) {missing}; ScanObjectNN files hold 'data' and 'label' "
                                 f"(found {sorted(file.keys())})")
            points = np.asarray(file["data"], dtype=np.float32)
            labels = np.asarray(file["label"])
        if points.ndim != 3 or points.shape[2] != 3:
            raise ValueError(f"{path}: 'data' must have shape (N, P, 3), got {points.shape}")
        labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
        if labels.shape != (points.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{path}: 'label' must be {points.shape[0]} integers, got {labels.dtype} {labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(SCANOBJECTNN_CLASSES)):
            raise ValueError(f"{path}: labels must lie in [0, {len(SCANOBJECTNN_CLASSES)}), got "
                             f"[{labels.min()}, {labels.max()}]")
        return torch.from_numpy(points), torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return self.points.shape[0]

    def load(self, index: int) -> ObjectSample:
        return ObjectSample(points=self.points[index], label=int(self.labels[index]), name=f"{self.split}/{index:05d}")

    def __repr__(self) -> str:
        return f"ScanObjectNN(path={str(self.path)!r}, variant={self.variant!r}, objects={len(self)})"
