"""Outdoor datasets (ppt.data.sweeps) on files written in each dataset's real layout: SemanticKITTI
(.bin / .label, learning map, sequence split), nuScenes lidarseg (info pickles through the
restricted unpickler), Waymo (Pointcept's .npy frames); malformed files raise errors naming them."""

import os
import pickle

import numpy as np
import pytest
import torch

from ppt.data import (NUSCENES_CLASSES, SEMANTIC_KITTI_CLASSES, WAYMO_CLASSES, NuScenes, SemanticKITTI,
                      UnsafePickleError, Waymo, collate_scenes, write_synthetic_sweeps)
from ppt.data.sweeps import NUSCENES_LEARNING_MAP, SEMANTIC_KITTI_LEARNING_MAP
from ppt.data.sweeps.nuscenes import nuscenes_info_path
from ppt.data.sweeps.writers import RAW_LABELS

STEPS = 24  # firings per turn: a few hundred to a thousand points a sweep


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    write_synthetic_sweeps(root, "semantickitti", 3, seed=1, azimuth_steps=STEPS)
    return root


@pytest.fixture(scope="module")
def nuscenes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    write_synthetic_sweeps(root, "nuscenes", 2, seed=2, azimuth_steps=STEPS)
    return root


@pytest.fixture(scope="module")
def waymo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("waymo")
    write_synthetic_sweeps(root, "waymo", 2, seed=3, azimuth_steps=STEPS)
    return root


def _copy(root, tmp_path):
    import shutil

    return shutil.copytree(root, tmp_path / "copy")


# ---------------------------------------------------------------------------------------------- SemanticKITTI


def test_semantickitti_learning_map_is_the_official_one():
    assert len(SEMANTIC_KITTI_CLASSES) == 19 and set(SEMANTIC_KITTI_LEARNING_MAP.values()) == set(range(-1, 19))
    # moving classes merge with their static ones; lane marking is road; other-structure/object are ignored
    assert SEMANTIC_KITTI_LEARNING_MAP[252] == SEMANTIC_KITTI_LEARNING_MAP[10] == 0
    assert SEMANTIC_KITTI_LEARNING_MAP[254] == SEMANTIC_KITTI_LEARNING_MAP[30] == 5
    assert SEMANTIC_KITTI_LEARNING_MAP[60] == SEMANTIC_KITTI_LEARNING_MAP[40] == 8
    assert SEMANTIC_KITTI_LEARNING_MAP[52] == SEMANTIC_KITTI_LEARNING_MAP[99] == SEMANTIC_KITTI_LEARNING_MAP[0] == -1
    assert SEMANTIC_KITTI_LEARNING_MAP[13] == SEMANTIC_KITTI_LEARNING_MAP[257] == 4  # bus -> other-vehicle
    assert SEMANTIC_KITTI_CLASSES[SEMANTIC_KITTI_LEARNING_MAP[81]] == "traffic-sign"


def test_semantickitti_reads_the_release_layout(kitti_root):
    train, val = SemanticKITTI(kitti_root, "train"), SemanticKITTI(kitti_root, "val")
    assert (len(train), len(val)) == (2, 1)
    assert [f.points.relative_to(kitti_root).as_posix() for f in val.frames] == [
        "dataset/sequences/08/velodyne/000002.bin"]
    sample = train[1]
    scan = np.fromfile(kitti_root / "dataset/sequences/00/velodyne/000001.bin", dtype=np.float32).reshape(-1, 4)
    raw = np.fromfile(kitti_root / "dataset/sequences/00/labels/000001.label", dtype=np.uint32)
    assert sample.name == "00_000001" and sample.condition == "SemanticKITTI" and sample.color is None
    torch.testing.assert_close(sample.coord, torch.from_numpy(scan[:, :3]))
    torch.testing.assert_close(sample.strength, torch.from_numpy(scan[:, 3:]))
    expected = [SEMANTIC_KITTI_LEARNING_MAP[int(v)] for v in raw & 0xFFFF]
    assert sample.segment.tolist() == expected
    assert {int(v) for v in raw & 0xFFFF} & {252, 254}  # moving cars / people written with their own ids
    instance = raw >> 16
    assert sample.instance.tolist() == [int(i) if i else -1 for i in instance]
    # root may also be the dataset folder itself
    assert len(SemanticKITTI(kitti_root / "dataset", ["train", "val"])) == 3


def test_semantickitti_bad_files_name_themselves(kitti_root, tmp_path):
    root = _copy(kitti_root, tmp_path)
    labels = root / "dataset/sequences/00/labels/000000.label"
    raw = np.fromfile(labels, dtype=np.uint32)
    raw[3] = 7  # no such SemanticKITTI id
    raw.tofile(labels)
    with pytest.raises(ValueError, match=r"000000\.label: label ids \[7\] are not in the dataset's learning map"):
        SemanticKITTI(root, "train")[0]
    raw[:-1].tofile(labels)
    with pytest.raises(ValueError, match=r"000000\.label: \d+ labels for the \d+ points"):
        SemanticKITTI(root, "train")[0]
    scan = root / "dataset/sequences/00/velodyne/000001.bin"
    scan.write_bytes(scan.read_bytes()[:-6])
    with pytest.raises(ValueError, match=r"000001\.bin: \d+ bytes is not a whole number of velodyne scan"):
        SemanticKITTI(root, "train")[1]
    with pytest.raises(ValueError, match="split must be one of"):
        SemanticKITTI(root, "training")


def test_semantickitti_test_sequences_are_unlabelled(kitti_root, tmp_path):
    root = _copy(kitti_root, tmp_path)
    test_folder = root / "dataset/sequences/11/velodyne"
    test_folder.mkdir(parents=True)
    (root / "dataset/sequences/00/velodyne/000000.bin").rename(test_folder / "000000.bin")
    sample = SemanticKITTI(root, "test")[0]
    assert (sample.segment == -1).all() and sample.strength.shape == (sample.num_points, 1)
    with pytest.raises(FileNotFoundError, match=r"sequences/11/labels/000000\.label: missing"):
        SemanticKITTI(root, "test", require_labels=True)


# ---------------------------------------------------------------------------------------------- nuScenes


def test_nuscenes_reads_info_files_and_lidarseg(nuscenes_root):
    assert len(NUSCENES_CLASSES) == 16 and set(NUSCENES_LEARNING_MAP.values()) == set(range(-1, 16))
    infos = pickle.loads(nuscenes_info_path(nuscenes_root, "train").read_bytes())
    info = infos[0]
    dataset = NuScenes(nuscenes_root, "train")
    sample = dataset[0]
    points = np.fromfile(nuscenes_root / "raw" / info["lidar_path"], dtype=np.float32).reshape(-1, 5)
    raw = np.fromfile(nuscenes_root / "raw" / info["gt_segment_path"], dtype=np.uint8)
    assert sample.name == info["lidar_token"] and sample.condition == "nuScenes"
    torch.testing.assert_close(sample.coord, torch.from_numpy(points[:, :3]))
    torch.testing.assert_close(sample.strength[:, 0], torch.from_numpy(points[:, 3] / 255))
    assert sample.segment.tolist() == [NUSCENES_LEARNING_MAP[int(v)] for v in raw]
    assert set(points[:, 4].astype(int)) <= set(range(32))  # ring index of the HDL-32E
    assert NUSCENES_CLASSES[NUSCENES_LEARNING_MAP[RAW_LABELS["nuscenes"]["road"]]] == "driveable_surface"
    assert len(NuScenes(nuscenes_root, ["train", "val"])) == 2
    with pytest.raises(FileNotFoundError, match=r"nuscenes_infos_20sweeps_train\.pkl does not exist"):
        NuScenes(nuscenes_root, "train", sweeps=20)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_nuscenes_info_is_read_by_the_restricted_unpickler(nuscenes_root, tmp_path, monkeypatch):
    root = _copy(nuscenes_root, tmp_path)
    monkeypatch.chdir(tmp_path)
    path = nuscenes_info_path(root, "train")
    infos = pickle.loads(path.read_bytes())
    infos[0]["cam_intrinsic"] = _Payload()
    path.write_bytes(pickle.dumps(infos))
    with pytest.raises(UnsafePickleError, match="refusing to unpickle global 'posix.system'"):
        NuScenes(root, "train")
    assert not (tmp_path / "pwned").exists()
    path.write_bytes(pickle.dumps({"infos": infos[:0]}))
    with pytest.raises(ValueError, match=r"nuscenes_infos_10sweeps_train\.pkl: expected a list of keyframe dicts"):
        NuScenes(root, "train")
    path.write_bytes(pickle.dumps([{"lidar_token": "x"}]))
    with pytest.raises(ValueError, match="entry 0 is not a keyframe dict with a 'lidar_path' string"):
        NuScenes(root, "train")


def test_nuscenes_bad_files_name_themselves(nuscenes_root, tmp_path):
    root = _copy(nuscenes_root, tmp_path)
    info = pickle.loads(nuscenes_info_path(root, "val").read_bytes())[0]
    labels = root / "raw" / info["gt_segment_path"]
    raw = np.fromfile(labels, dtype=np.uint8)
    raw[0] = 40
    raw.tofile(labels)
    with pytest.raises(ValueError, match=r"_lidarseg\.bin: label ids \[40\]"):
        NuScenes(root, "val")[0]
    lidar = root / "raw" / info["lidar_path"]
    lidar.write_bytes(lidar.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"\.pcd\.bin: \d+ bytes is not a whole number of lidar point "
                                         r"\(float32 x y z intensity ring\) rows"):
        NuScenes(root, "val")[0]


# ---------------------------------------------------------------------------------------------- Waymo


def test_waymo_reads_pointcepts_layout(waymo_root, tmp_path):
    dataset = Waymo(waymo_root, "training")
    assert len(dataset) == 1 and len(WAYMO_CLASSES) == 22
    frame = next((waymo_root / "training").iterdir())
    frame = next(frame.iterdir())
    sample = dataset[0]
    assert sample.name == f"{frame.parent.name}_{frame.name}" and sample.condition == "Waymo"
    torch.testing.assert_close(sample.coord, torch.from_numpy(np.load(frame / "coord.npy")))
    torch.testing.assert_close(sample.strength, torch.from_numpy(np.load(frame / "strength.npy")))
    assert sample.segment.tolist() == np.load(frame / "segment.npy").tolist()
    assert WAYMO_CLASSES[RAW_LABELS["waymo"]["curb"]] == "Curb"

    root = _copy(waymo_root, tmp_path)
    frame = next(next((root / "validation").iterdir()).iterdir())
    np.save(frame / "mask.npy", np.array([np.zeros(3), np.ones(2)], dtype=object), allow_pickle=True)
    assert Waymo(root, "validation")[0].num_points > 0  # the pickled mask is never loaded
    segment = np.load(frame / "segment.npy")
    segment[0] = 22
    np.save(frame / "segment.npy", segment)
    with pytest.raises(ValueError, match=r"segment\.npy: labels must lie in \[-1, 22\)"):
        Waymo(root, "validation")[0]
    (frame / "strength.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"strength\.npy: missing"):
        Waymo(root, "validation")[0]
    with pytest.raises(FileNotFoundError, match=r"split folder .*testing does not exist"):
        Waymo(root, "testing")


def test_sweeps_collate_to_coordinates_and_intensity(waymo_root):
    from ppt.data.sweeps import sweep_train_transform

    chain = sweep_train_transform(0.05, (-35.2, -35.2, -4, 35.2, 35.2, 2))
    dataset = Waymo(waymo_root, ["training", "validation"], chain)
    batch = collate_scenes([dataset[0], dataset[1]], feat_keys=("coord", "strength"))
    assert batch.feat.shape == (batch.coord.shape[0], 4)
    torch.testing.assert_close(batch.feat[:, :3], batch.coord)
    assert batch.sparse_tensor().features.shape[1] == 4
