"""ScanNet v2 (20 benchmark classes) in Pointcept's preprocessed layout."""

from __future__ import annotations

import re

from ppt.data.scenes.dataset import SceneDataset

__all__ = ["ScanNet", "SCANNET_CLASSES"]

# The ScanNet benchmark's 20 classes in their label order (Pointcept's CLASS_LABELS_20; its
# configs/_base_/dataset/scannet.py spells "refridgerator").
SCANNET_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "otherfurniture",
)


class ScanNet(SceneDataset):
    """ScanNet v2 scenes: ``root/{train,val,test}/sceneXXXX_XX/``.

    Labels come from ``segment20.npy`` (what Pointcept's ``preprocess_scannet.py`` writes) or,
    failing that, ``segment.npy``; test scenes have none (all ``-1``).
    """

    class_names = SCANNET_CLASSES
    condition = "ScanNet"
    label_files = ("segment20.npy", "segment.npy")
    scene_pattern = re.compile(r"(^|/)scene\d{4}_\d{2}$")
    distinctive_files = ("segment20.npy", "segment200.npy")
