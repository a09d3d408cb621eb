"""SemanticKITTI (19 classes) in its own release layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppt.data.sweeps.dataset import RawSweep, SweepDataset, SweepFrame, lookup_labels, read_binary

__all__ = ["SemanticKITTI", "SEMANTIC_KITTI_CLASSES", "SEMANTIC_KITTI_LEARNING_MAP", "SEMANTIC_KITTI_LEARNING_MAP_INV",
           "SEMANTIC_KITTI_SPLITS"]

SEMANTIC_KITTI_CLASSES = (
    "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist", "road",
    "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk", "terrain", "pole",
    "traffic-sign",
)

# semantic-kitti.yaml's learning_map (the benchmark's 19 classes; moving classes merge with their
# static ones, "outlier", "other-structure" and "other-object" are ignored), classes shifted down by
# one so that "unlabeled" is -1 (as Pointcept's get_learning_map).
SEMANTIC_KITTI_LEARNING_MAP = {
    0: -1, 1: -1, 10: 0, 11: 1, 13: 4, 15: 2, 16: 4, 18: 3, 20: 4, 30: 5, 31: 6, 32: 7, 40: 8, 44: 9, 48: 10,
    49: 11, 50: 12, 51: 13, 52: -1, 60: 8, 70: 14, 71: 15, 72: 16, 80: 17, 81: 18, 99: -1, 252: 0, 253: 6,
    254: 5, 255: 7, 256: 4, 257: 4, 258: 3, 259: 4,
}
"""Raw SemanticKITTI id (the low 16 bits of a ``.label`` entry) -> class of :data:`SEMANTIC_KITTI_CLASSES`."""

SEMANTIC_KITTI_LEARNING_MAP_INV = (10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81)
"""Class of :data:`SEMANTIC_KITTI_CLASSES` -> the raw id a ``.label`` file (and the benchmark's
submission) stores for it: semantic-kitti.yaml's ``learning_map_inv``, as Pointcept writes its
test predictions."""

SEMANTIC_KITTI_SPLITS = {"train": (0, 1, 2, 3, 4, 5, 6, 7, 9, 10), "val": (8,),
                         "test": (11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)}
"""The standard sequence split (sequence 08 validates)."""


class SemanticKITTI(SweepDataset):
    """SemanticKITTI sweeps: ``root/dataset/sequences/NN/velodyne/NNNNNN.bin`` (float32 ``x y z
    intensity`` rows) with ``labels/NNNNNN.label`` (uint32: semantic id in the low 16 bits, instance
    id in the high 16), as the KITTI odometry and SemanticKITTI archives unpack (``root`` may also be
    the ``dataset`` folder itself, holding ``sequences``). Splits ``train`` / ``val`` / ``test``
    by sequence (:data:`SEMANTIC_KITTI_SPLITS`); a sequence that is not on disk is skipped.
    ``strength`` is the stored intensity (already in ``[0, 1]``); ``instance`` the high 16 bits
    (``-1`` where 0)."""

    class_names = SEMANTIC_KITTI_CLASSES
    prompt_names = (
        "car", "bicycle", "motorcycle", "truck", "other vehicle", "person", "person who rides a bicycle",
        "person who rides a motorcycle", "road", "parking", "path for pedestrians at the side of a road",
        "other ground", "building", "fence", "vegetation", "trunk", "terrain", "pole", "traffic sign",
    )
    condition = "SemanticKITTI"
    splits = tuple(SEMANTIC_KITTI_SPLITS)
    point_cloud_range = (-35.2, -35.2, -4.0, 35.2, 35.2, 2.0)

    @property
    def sequences_folder(self) -> Path:
        nested = self.root / "dataset" / "sequences"
        return nested if nested.is_dir() else self.root / "sequences"

    def list_frames(self, split: str) -> list[SweepFrame]:
        folder = self.sequences_folder
        if not folder.is_dir():
            raise FileNotFoundError(f"SemanticKITTI: no sequences folder under {self.root} (expected "
                                    f"{self.root / 'dataset' / 'sequences'} or {self.root / 'sequences'})")
        frames = []
        for sequence in SEMANTIC_KITTI_SPLITS[split]:
            sequence_folder = folder / f"{sequence:02d}"
            if not (sequence_folder / "velodyne").is_dir():
                continue
            for scan in sorted((sequence_folder / "velodyne").glob("*.bin")):
                frames.append(SweepFrame(f"{sequence:02d}_{scan.stem}", scan,
                                         sequence_folder / "labels" / f"{scan.stem}.label"))
        return frames

    @classmethod
    def frame_of(cls, path: Path) -> SweepFrame:
        """A velodyne scan ``.bin``; in the release layout (``NN/velodyne/NNNNNN.bin``) it is named
        ``NN_NNNNNN`` as in the dataset and labelled by ``NN/labels/NNNNNN.label`` when that exists."""
        if not path.is_file() or path.suffix != ".bin":
            raise ValueError(f"{path}: a SemanticKITTI sweep is a velodyne scan .bin file (float32 x y z intensity "
                             "rows)")
        if path.parent.name != "velodyne":
            return SweepFrame(path.stem, path, None)
        return SweepFrame(f"{path.parent.parent.name}_{path.stem}", path,
                          path.parent.parent / "labels" / f"{path.stem}.label")

    @classmethod
    def recognises(cls, path) -> bool:
        path = Path(path)
        return path.suffix == ".bin" and path.parent.name == "velodyne"

    @classmethod
    def prediction_files(cls, out: Path, name: str, prediction: np.ndarray) -> list[Path]:
        """``<name>.label``: the benchmark's format, one uint32 per point holding the raw id of its
        class (:data:`SEMANTIC_KITTI_LEARNING_MAP_INV`) in the low 16 bits, instance 0."""
        path = out / f"{name}.label"
        np.asarray(SEMANTIC_KITTI_LEARNING_MAP_INV, dtype="<u4")[prediction].tofile(path)
        return [path]

    @classmethod
    def read_frame(cls, frame: SweepFrame) -> RawSweep:
        scan = read_binary(frame.points, np.float32, 4, "velodyne scan (float32 x y z intensity)")
        if frame.labels is None or not frame.labels.is_file():
            return RawSweep(scan[:, :3], scan[:, 3:], None)
        label = read_binary(frame.labels, np.uint32, 1, "label (uint32)")
        if label.shape[0] != scan.shape[0]:
            raise ValueError(f"{frame.labels}: {label.shape[0]} labels for the {scan.shape[0]} points of "
                             f"{frame.points}")
        instance = (label >> 16).astype(np.int64)
        segment = lookup_labels(label & 0xFFFF, SEMANTIC_KITTI_LEARNING_MAP, frame.labels)
        return RawSweep(scan[:, :3], scan[:, 3:], segment, np.where(instance > 0, instance, -1))
