"""One sweep read by itself (``SweepDataset.read_sweep``, what ``ppt predict`` reads): the same
arrays as the dataset gives, the layout each dataset recognises, the SemanticKITTI ``.label``
writer, and errors for what is not a sweep of the dataset."""

import numpy as np
import pytest
import torch

from ppt.data.sweeps import NuScenes, SemanticKITTI, Waymo, write_synthetic_sweeps
from ppt.data.sweeps.semantic_kitti import SEMANTIC_KITTI_LEARNING_MAP

DATASETS = {"semantickitti": (SemanticKITTI, "train"), "nuscenes": (NuScenes, "train"), "waymo": (Waymo, "training")}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    return {flavor: (root / flavor, write_synthetic_sweeps(root / flavor, flavor, 2, azimuth_steps=24))
            for flavor in DATASETS}


@pytest.mark.parametrize("flavor", sorted(DATASETS))
def test_a_sweep_by_itself_reads_as_in_its_dataset(sweeps, flavor):
    dataset_class, split = DATASETS[flavor]
    root, paths = sweeps[flavor]
    stored = dataset_class(root, split).load(0)
    alone = dataset_class.read_sweep(paths[0])
    torch.testing.assert_close(alone.coord, stored.coord)
    torch.testing.assert_close(alone.strength, stored.strength)
    assert alone.condition == dataset_class.condition
    if flavor == "nuscenes":  # lidarseg labels are found through the info files only
        assert alone.name == paths[0].name.removesuffix(".pcd.bin") and (alone.segment == -1).all()
    else:
        assert alone.name == stored.name
        torch.testing.assert_close(alone.segment, stored.segment)
    assert [other.recognises(paths[0]) for other, _ in DATASETS.values()] == [
        name == flavor for name in DATASETS]


def test_semantickitti_label_file_round_trips_through_the_learning_map(tmp_path):
    prediction = np.arange(19).repeat(3)
    [path] = SemanticKITTI.prediction_files(tmp_path, "08_000001", prediction)
    assert path == tmp_path / "08_000001.label"
    raw = np.fromfile(path, dtype="<u4")
    assert raw.shape == prediction.shape and (raw >> 16 == 0).all()
    np.testing.assert_array_equal([SEMANTIC_KITTI_LEARNING_MAP[int(r)] for r in raw], prediction)
    assert NuScenes.prediction_files(tmp_path, "x", prediction) == []


def test_what_is_not_a_sweep_of_the_dataset(sweeps, tmp_path):
    kitti_scan, frame = sweeps["semantickitti"][1][0], sweeps["waymo"][1][0]
    with pytest.raises(ValueError, match="a SemanticKITTI sweep is a velodyne scan .bin file"):
        SemanticKITTI.read_sweep(frame)
    with pytest.raises(ValueError, match="a nuScenes sweep is a lidar .bin file"):
        NuScenes.read_sweep(frame / "coord.npy")
    with pytest.raises(ValueError, match="a Waymo sweep is a frame folder"):
        Waymo.read_sweep(kitti_scan)
    with pytest.raises(ValueError, match=r"is not a whole number of lidar point .* rows \(5 x float32"):
        NuScenes.read_sweep(_truncated(kitti_scan, tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="coord.npy: missing"):
        Waymo.read_sweep(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        SemanticKITTI.read_sweep(tmp_path / "nothing.bin")


def _truncated(scan, folder):
    """A copy of a 16-byte-per-point scan cut to a size that is no whole number of 20-byte rows."""
    path = folder / "cut.pcd.bin"
    data = scan.read_bytes()
    path.write_bytes(data[:len(data) - len(data) % 20 - 4])
    return path
