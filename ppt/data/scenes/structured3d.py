"""Structured3D (25 classes, photo-realistic synthetic rooms) in Pointcept's preprocessed layout."""

from __future__ import annotations

import re
from pathlib import Path

from ppt.data.scenes.dataset import SceneDataset

__all__ = ["Structured3D", "STRUCTURED3D_CLASSES"]

# Pointcept's CLASS_LABELS_25 (NYU40 ids 1-9, 11, 14-19, 22, 24, 25, 32, 34, 35, 38-40).
STRUCTURED3D_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "picture",
    "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "ceiling", "refrigerator",
    "television", "nightstand", "sink", "lamp", "otherstructure", "otherfurniture", "otherprop",
)


class Structured3D(SceneDataset):
    """Structured3D rooms: ``root/{train,val,test}/scene_XXXXX/room_Y/``, one sample per room,
    named ``"scene_XXXXX_room_Y"`` as in Pointcept."""

    class_names = STRUCTURED3D_CLASSES
    condition = "Structured3D"
    scene_pattern = re.compile(r"(^|/)scene_\d{5}[/_]room_\d+$")  # scene_XXXXX/room_Y, or "scene_XXXXX_room_Y"

    def scenes_in(self, folder: Path) -> list[Path]:
        return sorted(path for path in folder.glob("scene_*/room_*") if path.is_dir())

    def scene_name(self, path: Path) -> str:
        return f"{path.parent.name}_{path.name}"
