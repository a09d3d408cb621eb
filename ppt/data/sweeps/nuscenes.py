"""nuScenes lidarseg (16 classes), indexed by Pointcept's info files."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from ppt.data.safe_pickle import load_array_pickle
from ppt.data.scenes.dataset import SceneTransform
from ppt.data.sweeps.dataset import RawSweep, SweepDataset, SweepFrame, lookup_labels, read_binary

__all__ = ["NuScenes", "NUSCENES_CLASSES", "NUSCENES_LEARNING_MAP", "nuscenes_info_path"]

NUSCENES_CLASSES = (
    "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian", "traffic_cone",
    "trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain", "manmade", "vegetation",
)

# The lidarseg challenge's merge of the 32 general classes into 16 (Pointcept's get_learning_map):
# noise, animal, personal mobility, stroller, wheelchair, debris, pushable/pullable, bicycle rack,
# ambulance, police, ego vehicle and static.other are ignored.
NUSCENES_LEARNING_MAP = {
    0: -1, 1: -1, 2: 6, 3: 6, 4: 6, 5: -1, 6: 6, 7: -1, 8: -1, 9: 0, 10: -1, 11: -1, 12: 7, 13: -1, 14: 1,
    15: 2, 16: 2, 17: 3, 18: 4, 19: -1, 20: -1, 21: 5, 22: 8, 23: 9, 24: 10, 25: 11, 26: 12, 27: 13, 28: 14,
    29: -1, 30: 15, 31: -1,
}
"""nuScenes general class index (a lidarseg ``.bin`` byte) -> class of :data:`NUSCENES_CLASSES`."""


def nuscenes_info_path(root: str | PathLike, split: str, sweeps: int = 10) -> Path:
    """Pointcept's info file of ``split``: ``root/info/nuscenes_infos_{sweeps}sweeps_{split}.pkl``."""
    return Path(root) / "info" / f"nuscenes_infos_{sweeps}sweeps_{split}.pkl"


class NuScenes(SweepDataset):
    """nuScenes lidarseg keyframes as Pointcept's ``preprocess_nuscenes_info.py`` indexes them:
    ``root/info/nuscenes_infos_{sweeps}sweeps_{train,val,test}.pkl`` hold one dict per keyframe
    whose ``lidar_path`` (``samples/LIDAR_TOP/*.pcd.bin``: float32 ``x y z intensity ring`` rows)
    and ``gt_segment_path`` (``lidarseg/v1.0-*/<token>_lidarseg.bin``: one uint8 general class per
    point; absent for test) are relative to ``root/raw`` (the nuScenes release). The info files
    are read with :func:`ppt.data.load_array_pickle`, which admits arrays and plain containers
    only. ``strength`` = intensity / 255; only the keyframe is read (``sweeps`` names the info
    file, as Pointcept)."""

    class_names = NUSCENES_CLASSES
    prompt_names = (
        "barrier", "bicycle", "bus", "car", "construction vehicle", "motorcycle", "pedestrian", "traffic cone",
        "trailer", "truck", "path suitable or safe for driving", "other flat", "sidewalk", "terrain", "man made",
        "vegetation",
    )
    condition = "nuScenes"
    splits = ("train", "val", "test")
    point_cloud_range = None  # Pointcept's nuScenes SpUNet config does not clip (its PointClip is commented out)

    def __init__(self, root: str | PathLike, split: str | Sequence[str] = "train",
                 transform: SceneTransform | None = None, *, seed: int = 0, require_labels: bool = False,
                 sweeps: int = 10) -> None:
        self.sweeps = int(sweeps)
        super().__init__(root, split, transform, seed=seed, require_labels=require_labels)

    def list_frames(self, split: str) -> list[SweepFrame]:
        path = nuscenes_info_path(self.root, split, self.sweeps)
        if not path.is_file():
            raise FileNotFoundError(f"NuScenes: info file {path} does not exist (Pointcept's "
                                    "preprocess_nuscenes_info.py writes it; sweeps= picks the file)")
        infos = load_array_pickle(path)
        if not isinstance(infos, list):
            raise ValueError(f"{path}: expected a list of keyframe dicts, got {type(infos).__name__}")
        frames = []
        for number, info in enumerate(infos):
            if not isinstance(info, dict) or not isinstance(info.get("lidar_path"), str):
                raise ValueError(f"{path}: entry {number} is not a keyframe dict with a 'lidar_path' string")
            labels = info.get("gt_segment_path")
            if labels is not None and not isinstance(labels, str):
                raise ValueError(f"{path}: entry {number}: 'gt_segment_path' must be a string, got "
                                 f"{type(labels).__name__}")
            name = str(info.get("lidar_token", Path(info["lidar_path"]).stem))
            frames.append(SweepFrame(name, self.root / "raw" / info["lidar_path"],
                                     None if labels is None else self.root / "raw" / labels))
        return frames

    @classmethod
    def frame_of(cls, path: Path) -> SweepFrame:
        """A lidar ``.bin`` (``samples/LIDAR_TOP/*.pcd.bin``), named without ``.pcd.bin``; unlabelled
        (lidarseg labels are found through the info files by the keyframe's token)."""
        if not path.is_file() or path.suffix != ".bin":
            raise ValueError(f"{path}: a nuScenes sweep is a lidar .bin file (float32 x y z intensity ring rows)")
        return SweepFrame(path.name.removesuffix(".bin").removesuffix(".pcd"), path, None)

    @classmethod
    def recognises(cls, path) -> bool:
        return Path(path).name.endswith(".pcd.bin")

    @classmethod
    def read_frame(cls, frame: SweepFrame) -> RawSweep:
        points = read_binary(frame.points, np.float32, 5, "lidar point (float32 x y z intensity ring)")
        strength = points[:, 3:4] / 255.0
        if frame.labels is None or not frame.labels.is_file():
            return RawSweep(points[:, :3], strength, None)
        raw = read_binary(frame.labels, np.uint8, 1, "lidarseg label (uint8)")
        if raw.shape[0] != points.shape[0]:
            raise ValueError(f"{frame.labels}: {raw.shape[0]} labels for the {points.shape[0]} points of "
                             f"{frame.points}")
        return RawSweep(points[:, :3], strength, lookup_labels(raw, NUSCENES_LEARNING_MAP, frame.labels))
