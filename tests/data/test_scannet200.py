"""ScanNet200: its class table and benchmark split, the loader on Pointcept-layout folders, and the
synthetic rooms' 200-class labelling."""

import numpy as np
import pytest

from ppt.data import SCANNET200_CLASS_GROUPS, SCANNET200_CLASSES, SCANNET_CLASSES, ScanNet, ScanNet200
from ppt.data.scenes.rooms import write_synthetic_rooms
from ppt.data.scenes.rooms.flavors import SCANNET200_LABELS
from ppt.data.scenes.scannet200 import SCANNET200_CATEGORY_IDS


def test_class_table_and_head_common_tail_split():
    assert len(SCANNET200_CLASSES) == len(set(SCANNET200_CLASSES)) == 200
    assert SCANNET200_CLASSES[:6] == ("wall", "chair", "floor", "table", "door", "couch")
    assert SCANNET200_CLASSES[-1] == "mattress"
    assert len(SCANNET200_CATEGORY_IDS) == 200 and list(SCANNET200_CATEGORY_IDS) == sorted(set(SCANNET200_CATEGORY_IDS))
    assert SCANNET200_CATEGORY_IDS[-1] == 1191
    groups = SCANNET200_CLASS_GROUPS
    assert list(groups) == ["head", "common", "tail"]
    assert [len(groups[name]) for name in groups] == [66, 68, 66]
    members = [name for group in groups.values() for name in group]
    assert sorted(members) == sorted(SCANNET200_CLASSES)  # every class in exactly one group
    assert {"wall", "chair", "object"} <= set(groups["head"]) and "cushion" in groups["common"]
    assert "mattress" in groups["common"] and "luggage" in groups["tail"]


def _write_scene(folder, n, segment200):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(folder / "coord.npy", rng.random((n, 3)).astype(np.float32))
    np.save(folder / "color.npy", rng.integers(0, 255, (n, 3)).astype(np.uint8))
    np.save(folder / "normal.npy", rng.random((n, 3)).astype(np.float32))
    np.save(folder / "segment20.npy", np.zeros(n, dtype=np.int64))
    if segment200 is not None:
        np.save(folder / "segment200.npy", segment200)


def test_loader_reads_segment200_of_a_pointcept_folder(tmp_path):
    _write_scene(tmp_path / "train" / "scene0000_00", 5, np.array([0, 199, -1, 35, 5], dtype=np.int64))
    dataset = ScanNet200(tmp_path, "train")
    assert dataset.num_classes == 200 and dataset.condition == "ScanNet200"
    assert dataset[0].segment.tolist() == [0, 199, -1, 35, 5]
    assert ScanNet(tmp_path, "train")[0].segment.tolist() == [0] * 5  # ScanNet-20 reads segment20.npy
    _write_scene(tmp_path / "val" / "scene0001_00", 3, np.array([0, 200, 1], dtype=np.int64))
    with pytest.raises(ValueError, match=r"segment200.npy: labels must lie in \[-1, 200\)"):
        ScanNet200(tmp_path, "val")[0]
    _write_scene(tmp_path / "test" / "scene0002_00", 3, None)
    with pytest.raises(FileNotFoundError, match="segment200.npy: missing"):
        ScanNet200(tmp_path, "test", require_labels=True)
    assert ScanNet200(tmp_path, "test")[0].segment.tolist() == [-1, -1, -1]  # unlabelled test scenes


def test_synthetic_rooms_have_a_consistent_200_class_labelling(tmp_path):
    write_synthetic_rooms(tmp_path, "scannet", 3, seed=1, density=0.1)
    scannet, scannet200 = ScanNet(tmp_path, ["train", "val"]), ScanNet200(tmp_path, ["train", "val"])
    assert len(scannet200) == 3
    seen = set()
    for index in range(len(scannet200)):
        labels20, labels200 = scannet.load(index).segment.numpy(), scannet200.load(index).segment.numpy()
        assert labels200.min() >= -1 and labels200.max() < 200
        # where ScanNet-20 labels a point, ScanNet200 labels it with the same object's class
        same_class = {SCANNET_CLASSES.index(name): SCANNET200_CLASSES.index(name)
                      for name in SCANNET_CLASSES if name in SCANNET200_CLASSES}
        same_class[SCANNET_CLASSES.index("sofa")] = SCANNET200_CLASSES.index("couch")
        same_class[SCANNET_CLASSES.index("otherfurniture")] = SCANNET200_CLASSES.index("furniture")
        labelled20 = labels20 >= 0
        assert np.array_equal(labels200[labelled20], np.vectorize(same_class.get)(labels20[labelled20]))
        # ScanNet200 labels more: points ScanNet-20 ignores (ceiling, pillows, clutter ...) have classes
        assert (labels200[~labelled20] >= 0).any()
        seen |= {SCANNET200_CLASSES[i] for i in np.unique(labels200) if i >= 0}
    assert {"wall", "floor", "ceiling"} <= seen
    assert set(SCANNET200_LABELS.values()) <= set(SCANNET200_CLASSES)
    assert np.load(next((tmp_path / "train").iterdir()) / "segment200.npy").dtype == np.int64  # as Pointcept writes it
