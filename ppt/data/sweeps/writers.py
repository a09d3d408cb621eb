"""Synthetic sweeps written in each outdoor dataset's on-disk layout (``ppt data synth-sweeps``):
street scenes of :mod:`.street` scanned by the flavor's LiDAR, labelled with the dataset's raw
ids, so the real loaders (and their learning maps) read them."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from os import PathLike
from pathlib import Path

import numpy as np

from ppt.data.sweeps.nuscenes import nuscenes_info_path
from ppt.data.sweeps.street import LIDARS, STREET_CLASSES, StreetSweep, cast_sweep, synthesize_street

__all__ = ["SWEEP_FLAVORS", "RAW_LABELS", "write_synthetic_sweeps", "split_counts"]

SWEEP_FLAVORS = ("semantickitti", "nuscenes", "waymo")

RAW_LABELS: dict[str, dict[str, int]] = {
    # semantic-kitti.yaml ids; moving vehicles and people take the "moving-*" ids (252 car, 254 person, 258 truck)
    "semantickitti": {"road": 40, "lane-marking": 60, "sidewalk": 48, "curb": 48, "terrain": 72, "building": 50,
                      "fence": 51, "vegetation": 70, "trunk": 71, "pole": 80, "traffic-sign": 81, "car": 10,
                      "truck": 18, "person": 30, "bicycle": 11},
    # nuScenes general class indices (lidarseg): flat.driveable_surface 24, flat.sidewalk 26, flat.terrain 27,
    # static.manmade 28, static.vegetation 30, vehicle.car 17, vehicle.truck 23, human.pedestrian.adult 2,
    # vehicle.bicycle 14
    "nuscenes": {"road": 24, "lane-marking": 24, "sidewalk": 26, "curb": 26, "terrain": 27, "building": 28,
                 "fence": 28, "vegetation": 30, "trunk": 30, "pole": 28, "traffic-sign": 28, "car": 17, "truck": 23,
                 "person": 2, "bicycle": 14},
    # Waymo types - 1 (Pointcept's segment.npy); a fence is part of "Building" (walls) in Waymo's labels
    "waymo": {"road": 17, "lane-marking": 18, "sidewalk": 21, "curb": 16, "terrain": 20, "building": 13, "fence": 13,
              "vegetation": 14, "trunk": 15, "pole": 9, "traffic-sign": 7, "car": 0, "truck": 1, "person": 6,
              "bicycle": 11},
}
"""Generator class -> the raw label id each flavor writes for it."""

_MOVING_KITTI = {10: 252, 30: 254, 18: 258}


def split_counts(sweeps: int) -> dict[str, int]:
    """Sweeps per split: a quarter (at least one) validates, the rest train."""
    if sweeps < 2:
        raise ValueError(f"write_synthetic_sweeps: sweeps must be >= 2 (one train, one val), got {sweeps}")
    val = max(1, sweeps // 4)
    return {"train": sweeps - val, "val": val}


def _raw_labels(flavor: str, sweep: StreetSweep) -> np.ndarray:
    table = np.array([RAW_LABELS[flavor][name] for name in STREET_CLASSES], dtype=np.int64)
    return table[sweep.label]


def _write_semantickitti(root: Path, split: str, number: int, sweep: StreetSweep, rng: np.random.Generator) -> Path:
    sequence = {"train": "00", "val": "08"}[split]
    folder = root / "dataset" / "sequences" / sequence
    (folder / "velodyne").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    scan = np.concatenate([sweep.coord, sweep.intensity[:, None]], axis=1).astype("<f4")
    scan.tofile(folder / "velodyne" / f"{number:06d}.bin")
    semantic = _raw_labels("semantickitti", sweep)
    for static, moving in _MOVING_KITTI.items():
        semantic = np.where((semantic == static) & sweep.moving, moving, semantic)
    # instance ids only on things, as SemanticKITTI's labels have them
    thing = np.isin(sweep.label, [STREET_CLASSES.index(name) for name in ("car", "truck", "person", "bicycle")])
    label = (np.where(thing, sweep.object, 0).astype(np.uint32) << 16) | semantic.astype(np.uint32)
    label.astype("<u4").tofile(folder / "labels" / f"{number:06d}.label")
    return folder / "velodyne" / f"{number:06d}.bin"


def _token(rng: np.random.Generator) -> str:
    return "".join(f"{byte:02x}" for byte in rng.integers(0, 256, 16))


def _write_nuscenes(root: Path, split: str, number: int, sweep: StreetSweep, rng: np.random.Generator) -> dict:
    """Writes the keyframe's point and label files; returns its info entry (pickled per split by the caller)."""
    token, sample_token = _token(rng), _token(rng)
    timestamp = 1532402927647951 + number * 500_000
    lidar_path = f"samples/LIDAR_TOP/n015-2018-07-24-11-22-45+0800__LIDAR_TOP__{timestamp}.pcd.bin"
    label_path = f"lidarseg/v1.0-trainval/{token}_lidarseg.bin"
    (root / "raw" / lidar_path).parent.mkdir(parents=True, exist_ok=True)
    (root / "raw" / label_path).parent.mkdir(parents=True, exist_ok=True)
    points = np.concatenate([sweep.coord, (sweep.intensity * 255.0)[:, None], sweep.beam[:, None]], axis=1)
    points.astype("<f4").tofile(root / "raw" / lidar_path)
    _raw_labels("nuscenes", sweep).astype(np.uint8).tofile(root / "raw" / label_path)
    keyframe = {"lidar_path": lidar_path, "sample_data_token": token, "transform_matrix": None, "time_lag": 0.0}
    return {"lidar_path": lidar_path, "lidar_token": token, "token": sample_token,
            "sweeps": [keyframe] * 9,  # no earlier sweeps: preprocess_nuscenes_info.py repeats the keyframe
            "ref_from_car": np.eye(4), "car_from_global": np.eye(4), "timestamp": timestamp * 1e-6,
            "gt_segment_path": label_path}


def _write_waymo(root: Path, split: str, number: int, sweep: StreetSweep, rng: np.random.Generator) -> Path:
    folder_split = {"train": "training", "val": "validation"}[split]
    segment = f"segment-{10_000_000 + number}_0000_000_0000_000_with_camera_labels"
    folder = root / folder_split / segment / str(1_550_000_000_000_000 + number)
    folder.mkdir(parents=True, exist_ok=True)
    coord = sweep.coord.copy()
    coord[:, 2] += LIDARS["waymo"].height  # the vehicle frame: origin on the ground below the sensor
    np.save(folder / "coord.npy", coord.astype(np.float32))
    # Pointcept stores tanh of Waymo's intensity (unbounded, ~[0, 1.5] for these materials)
    np.save(folder / "strength.npy", np.tanh(1.5 * sweep.intensity)[:, None].astype(np.float32))
    np.save(folder / "pose.npy", np.eye(4, dtype=np.float32))
    np.save(folder / "segment.npy", _raw_labels("waymo", sweep).astype(np.int32))
    return folder


_WRITERS: dict[str, Callable] = {"semantickitti": _write_semantickitti, "nuscenes": _write_nuscenes,
                                 "waymo": _write_waymo}


def write_synthetic_sweeps(root: str | PathLike, flavor: str, sweeps: int, *, seed: int = 0,
                           azimuth_steps: int | None = None) -> list[Path]:
    """Write ``sweeps`` street sweeps (:func:`split_counts` into train and val) in the layout of
    ``flavor``; returns each sweep's point file (Waymo: frame folder; nuScenes: ``.pcd.bin``).

    Layouts: ``semantickitti``: ``dataset/sequences/{00,08}/{velodyne,labels}/NNNNNN.{bin,label}``;
    ``nuscenes``: ``raw/samples/LIDAR_TOP/*.pcd.bin``, ``raw/lidarseg/v1.0-trainval/*_lidarseg.bin``
    and ``info/nuscenes_infos_10sweeps_{train,val}.pkl``; ``waymo``:
    ``{training,validation}/<segment>/<timestamp>/{coord,strength,pose,segment}.npy``.
    ``azimuth_steps`` (default: the sensor's) sets the points per beam; the same seed writes the
    same files.
    """
    if flavor not in SWEEP_FLAVORS:
        raise ValueError(f"write_synthetic_sweeps: flavor must be one of {SWEEP_FLAVORS}, got {flavor!r}")
    if azimuth_steps is not None and azimuth_steps < 1:
        raise ValueError(f"write_synthetic_sweeps: azimuth_steps must be >= 1, got {azimuth_steps}")
    counts = split_counts(sweeps)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lidar, write = LIDARS[flavor], _WRITERS[flavor]
    written, infos = [], {split: [] for split in counts}
    number = 0
    for split, count in counts.items():
        for _ in range(count):
            rng = np.random.default_rng((seed, number))
            sweep = cast_sweep(synthesize_street(rng, lidar), lidar, rng, azimuth_steps)
            result = write(root, split, number, sweep, rng)
            if flavor == "nuscenes":
                infos[split].append(result)
                written.append(root / "raw" / result["lidar_path"])
            else:
                written.append(result)
            number += 1
    if flavor == "nuscenes":
        for split, entries in infos.items():
            path = nuscenes_info_path(root, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as file:
                pickle.dump(entries, file)
    return written
