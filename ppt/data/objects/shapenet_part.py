"""ShapeNetPart part segmentation in its official layout (``shapenetcore_partanno_segmentation_benchmark_v0_normal``,
as PointNet++, Point-MAE and PointMLP read it)::

    synsetoffset2category.txt                 "Airplane\\t02691156" per line; the line order is the category index
    02691156/1a04e3eab45ca15dd86060f189eb133.txt   rows "x y z nx ny nz part" (part: global id in [0, 50))
    train_test_split/shuffled_{train,val,test}_file_list.json   ["shape_data/02691156/1a04e3...", ...]

16 categories and 50 parts; every category owns a contiguous range of part ids
(:data:`SHAPENETPART_PARTS`). Items follow the official ``PartNormalDataset``: xyz centred on
its mean and scaled into the unit sphere (``pc_normalize``), then ``num_points`` points (2,048)
drawn uniformly *with* replacement, for training and test alike; ``augment=True`` adds the
official training augmentation (one random scale in [0.8, 1.25] and one shift in [-0.1, 0.1]
per cloud, on xyz only). The draws come from the item's seeded generator, so an item is
reproducible (the official code uses NumPy's global state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from ppt.data.seeded_dataset import SeededDataset

__all__ = ["SHAPENETPART_CATEGORIES", "SHAPENETPART_SYNSETS", "SHAPENETPART_PARTS", "SHAPENETPART_PART_NAMES",
           "PartSample", "PartBatch", "collate_parts", "ShapeNetPart", "category_part_mask", "SHAPENETPART_SPLITS"]

SHAPENETPART_CATEGORIES = ("Airplane", "Bag", "Cap", "Car", "Chair", "Earphone", "Guitar", "Knife", "Lamp", "Laptop",
                           "Motorbike", "Mug", "Pistol", "Rocket", "Skateboard", "Table")
"""The 16 categories in the order of ``synsetoffset2category.txt`` (the category index)."""

SHAPENETPART_SYNSETS = ("02691156", "02773838", "02954340", "02958343", "03001627", "03261776", "03467517", "03624134",
                        "03636649", "03642806", "03790512", "03797390", "03948459", "04099429", "04225987", "04379243")
"""The ShapeNet synset (folder name) of each category."""

_PART_COUNTS = (4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3)
_PART_STARTS = tuple(int(s) for s in np.cumsum((0,) + _PART_COUNTS[:-1]))

SHAPENETPART_PARTS: dict[str, tuple[int, ...]] = {
    category: tuple(range(start, start + count))
    for category, start, count in zip(SHAPENETPART_CATEGORIES, _PART_STARTS, _PART_COUNTS)}
"""Category -> its global part ids (the official ``seg_classes``: Airplane 0-3, ..., Table 47-49)."""

SHAPENETPART_PART_NAMES = tuple(f"{category}_{part - parts[0]}" for category, parts in SHAPENETPART_PARTS.items()
                                for part in parts)
"""The 50 part names, ``<Category>_<k>`` for the category's k-th part (the benchmark ships ids, no names)."""

SHAPENETPART_SPLITS = ("train", "val", "test", "trainval")


def category_part_mask(device: torch.device | str = "cpu") -> Tensor:
    """``(16, 50)`` bool: which parts belong to each category."""
    mask = torch.zeros(len(SHAPENETPART_CATEGORIES), len(SHAPENETPART_PART_NAMES), dtype=torch.bool, device=device)
    for index, parts in enumerate(SHAPENETPART_PARTS.values()):
        mask[index, parts[0]:parts[-1] + 1] = True
    return mask


@dataclass(frozen=True)
class PartSample:
    """One object of a part-segmentation dataset.

    Attributes:
        points: ``(N, 3)`` float32 xyz; ``normals``: ``(N, 3)`` float32.
        category: category index in [0, 16).
        parts: ``(N,)`` int64 global part ids (``-1``: unlabelled).
        name: ``<synset>/<shape id>``.
    """

    points: Tensor
    normals: Tensor
    category: int
    parts: Tensor
    name: str

    def __post_init__(self) -> None:
        count = self.points.shape[0] if self.points.dim() == 2 else -1
        for field_name, value, width in (("points", self.points, 3), ("normals", self.normals, 3)):
            if value.dim() != 2 or value.shape[1] != width or value.dtype != torch.float32 or value.shape[0] != count:
                raise ValueError(f"PartSample {self.name!r}: {field_name} must be float32 of shape (N, 3) with N "
                                 f"shared, got {value.dtype} {tuple(value.shape)}")
        if self.parts.shape != (count,) or self.parts.dtype != torch.int64:
            raise ValueError(f"PartSample {self.name!r}: parts must be int64 of shape ({count},), got "
                             f"{self.parts.dtype} {tuple(self.parts.shape)}")
        if not 0 <= self.category < len(SHAPENETPART_CATEGORIES):
            raise ValueError(f"PartSample {self.name!r}: category must lie in [0, 16), got {self.category}")


class PartBatch(NamedTuple):
    """``points``, ``normals`` ``(B, N, 3)`` float32, ``categories`` ``(B,)`` and ``parts`` ``(B, N)`` int64."""

    points: Tensor
    normals: Tensor
    categories: Tensor
    parts: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PartBatch:
        return PartBatch(*(value.to(device, non_blocking=non_blocking) for value in self))


def collate_parts(samples: Sequence[PartSample]) -> PartBatch:
    """Stack samples of equal point count."""
    if not samples:
        raise ValueError("collate_parts: got no samples")
    counts = sorted({sample.points.shape[0] for sample in samples})
    if len(counts) != 1:
        raise ValueError(f"collate_parts: samples have different point counts {counts}; draw num_points of each")
    return PartBatch(torch.stack([s.points for s in samples]), torch.stack([s.normals for s in samples]),
                     torch.tensor([s.category for s in samples], dtype=torch.int64),
                     torch.stack([s.parts for s in samples]))


def _read_categories(root: Path) -> list[tuple[str, str]]:
    path = root / "synsetoffset2category.txt"
    if not path.is_file():
        raise FileNotFoundError(f"ShapeNetPart: {path} does not exist (root should be the "
                                "shapenetcore_partanno_segmentation_benchmark_v0_normal folder)")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if any(len(row) != 2 for row in rows):
        raise ValueError(f"{path}: expected lines 'Category synset'")
    found = tuple(row[0] for row in rows)
    if found != SHAPENETPART_CATEGORIES:
        raise ValueError(f"{path}: expected the 16 categories {SHAPENETPART_CATEGORIES} in this order, got {found}")
    return [(row[0], row[1]) for row in rows]


def _split_ids(root: Path, split: str) -> set[str]:
    path = root / "train_test_split" / f"shuffled_{split}_file_list.json"
    if not path.is_file():
        raise FileNotFoundError(f"ShapeNetPart: {path} does not exist")
    entries = json.loads(path.read_text())
    if not isinstance(entries, list) or not all(isinstance(e, str) and e.count("/") == 2 for e in entries):
        raise ValueError(f"{path}: expected a JSON list of 'shape_data/<synset>/<id>' strings")
    return {entry.split("/")[2] for entry in entries}


def pc_normalize(points: Tensor) -> Tensor:
    """The official ``pc_normalize``: centre on the mean, divide by the largest distance to it."""
    centred = points - points.mean(0)
    radius = centred.norm(dim=1).max()
    return centred / radius if radius > 0 else centred


class ShapeNetPart(SeededDataset):
    """One split of ShapeNetPart.

    Args:
        root: the ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` folder.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"`` (the official training set).
        num_points: points drawn per item (with replacement; official 2,048); ``None`` keeps every point
            in file order (for prediction and inspection).
        augment: the official training scale and shift.
        seed: base seed of the per-item draws.
    """

    class_names = SHAPENETPART_PART_NAMES

    def __init__(self, root: str | PathLike, split: str = "trainval", num_points: int | None = 2048, *,
                 augment: bool = False, seed: int = 0) -> None:
        super().__init__(None, seed)
        if split not in SHAPENETPART_SPLITS:
            raise ValueError(f"ShapeNetPart split must be one of {SHAPENETPART_SPLITS}, got {split!r}")
        if num_points is not None and num_points < 1:
            raise ValueError(f"ShapeNetPart num_points must be >= 1 or None, got {num_points}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ShapeNetPart: root {self.root} does not exist")
        self.split, self.num_points, self.augment = split, num_points, augment
        categories = _read_categories(self.root)
        ids = set().union(*(_split_ids(self.root, part) for part in
                            (("train", "val") if split == "trainval" else (split,))))
        self.files: list[tuple[int, Path]] = []
        for category, (_, synset) in enumerate(categories):
            folder = self.root / synset
            if not folder.is_dir():
                raise FileNotFoundError(f"ShapeNetPart: category folder {folder} does not exist")
            self.files += [(category, path) for path in sorted(folder.glob("*.txt")) if path.stem in ids]
        if not self.files:
            raise ValueError(f"ShapeNetPart: no file of {self.root} is in the {split!r} split lists")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> PartSample:
        """Item ``index`` as stored (every point, xyz normalised), without the draw."""
        category, path = self.files[index]
        data = np.loadtxt(path, dtype=np.float32, ndmin=2)
        if data.shape[1] != 7 or data.shape[0] == 0:
            raise ValueError(f"{path}: expected rows 'x y z nx ny nz part', got an array of shape {data.shape}")
        parts = torch.from_numpy(data[:, 6].astype(np.int64))
        allowed = SHAPENETPART_PARTS[SHAPENETPART_CATEGORIES[category]]
        if bool(((parts < allowed[0]) | (parts > allowed[-1])).any()):
            raise ValueError(f"{path}: part ids must lie in {allowed[0]}..{allowed[-1]} for "
                             f"{SHAPENETPART_CATEGORIES[category]}, got {sorted(set(parts.tolist()))}")
        points = torch.from_numpy(np.ascontiguousarray(data[:, :3]))
        return PartSample(pc_normalize(points), torch.from_numpy(np.ascontiguousarray(data[:, 3:6])), category, parts,
                          f"{path.parent.name}/{path.stem}")

    def __getitem__(self, index: int) -> PartSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ShapeNetPart: index {index} out of range for {len(self)} objects")
        index %= len(self)
        sample = self.read(index)
        if self.num_points is None:
            return sample
        generator = self.generator(index)
        choice = torch.randint(sample.points.shape[0], (self.num_points,), generator=generator)
        points = sample.points[choice]
        if self.augment:
            scale = 0.8 + 0.45 * torch.rand((), generator=generator)
            shift = 0.2 * torch.rand(3, generator=generator) - 0.1
            points = points * scale + shift
        return PartSample(points, sample.normals[choice], sample.category, sample.parts[choice], sample.name)

    def __repr__(self) -> str:
        return f"ShapeNetPart(root={str(self.root)!r}, split={self.split!r}, objects={len(self)})"
