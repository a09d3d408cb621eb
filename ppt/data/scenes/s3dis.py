"""Stanford Large-Scale 3D Indoor Spaces (S3DIS, 13 classes) in Pointcept's preprocessed layout."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ppt.data.scenes.dataset import SceneDataset

__all__ = ["S3DIS", "S3DIS_CLASSES", "S3DIS_AREAS"]

S3DIS_CLASSES = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
    "bookcase", "board", "clutter",
)
S3DIS_AREAS = tuple(f"Area_{i}" for i in range(1, 7))


class S3DIS(SceneDataset):
    """S3DIS rooms: ``root/Area_N/<room>/``; ``normal.npy`` is optional (Pointcept writes it only
    with ``--parse_normal``).

    ``split`` is ``"train"`` (Areas 1-4 and 6), ``"val"`` / ``"test"`` (Area 5, held out as in
    the standard protocol), an area name, or a sequence of area names. Scene names are
    ``"Area_N-<room>"`` as in Pointcept.
    """

    class_names = S3DIS_CLASSES
    condition = "S3DIS"
    scene_pattern = re.compile(r"(^|/)Area_\d+[/-][^/]+$")  # root/Area_N/<room>, or named "Area_N-<room>"
    splits = {"train": ("Area_1", "Area_2", "Area_3", "Area_4", "Area_6"), "val": ("Area_5",), "test": ("Area_5",)}

    def split_folders(self, split: str | Sequence[str]) -> list[Path]:
        names = self.splits.get(split, (split,)) if isinstance(split, str) else tuple(split)
        unknown = [name for name in names if name not in S3DIS_AREAS]
        if unknown:
            raise ValueError(f"S3DIS: unknown split {unknown[0]!r}; expected one of {sorted(self.splits)} or area "
                             f"names {S3DIS_AREAS}")
        return [self.root / name for name in names]

    def scene_name(self, path: Path) -> str:
        return f"{path.parent.name}-{path.name}"
