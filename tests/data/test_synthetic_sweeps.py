"""Synthetic LiDAR sweeps (ppt.data.sweeps.street / writers, ``ppt data synth-sweeps``): the
returns of each flavor's sensor (beams, vertical field of view, range), the street's classes, the
files each layout needs, seeding."""

import subprocess
import sys

import numpy as np
import pytest

from ppt.data import NuScenes, SemanticKITTI, Waymo, write_synthetic_sweeps
from ppt.data.sweeps.street import LIDARS, STREET_CLASSES, cast_sweep, synthesize_street


@pytest.mark.parametrize("flavor", sorted(LIDARS))
def test_sweep_has_the_sensors_beams_field_of_view_and_range(flavor):
    lidar = LIDARS[flavor]
    rng = np.random.default_rng(0)
    sweep = cast_sweep(synthesize_street(rng, lidar), lidar, rng, azimuth_steps=90)
    assert 0.5 * 90 * lidar.beams < sweep.coord.shape[0] <= 90 * lidar.beams  # most rays return
    assert set(np.unique(sweep.beam)) <= set(range(lidar.beams)) and len(np.unique(sweep.beam)) > lidar.beams // 2
    distance = np.linalg.norm(sweep.coord, axis=1)
    elevation = np.degrees(np.arcsin(sweep.coord[:, 2] / distance))
    spacing = (lidar.fov_up - lidar.fov_down) / (lidar.beams - 1)
    expected = lidar.fov_down + spacing * sweep.beam
    assert np.abs(elevation - expected).max() < 0.1  # the ray of each beam (2 cm range noise)
    assert distance.min() >= lidar.min_range - 0.1 and distance.max() <= lidar.max_range + 0.1
    # the ground is lidar.height below the sensor: the lowest returns are road at z = -height
    road = sweep.label == STREET_CLASSES.index("road")
    assert np.abs(sweep.coord[road, 2] + lidar.height).max() < 0.1
    present = {STREET_CLASSES[i] for i in np.unique(sweep.label)}
    assert {"road", "sidewalk", "building", "car"} <= present
    assert 0 <= sweep.intensity.min() and sweep.intensity.max() <= 1


def test_same_seed_same_files_and_layouts(tmp_path):
    first = write_synthetic_sweeps(tmp_path / "a", "semantickitti", 2, seed=4, azimuth_steps=16)
    second = write_synthetic_sweeps(tmp_path / "b", "semantickitti", 2, seed=4, azimuth_steps=16)
    other = write_synthetic_sweeps(tmp_path / "c", "semantickitti", 2, seed=5, azimuth_steps=16)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second] != [p.read_bytes() for p in other]
    assert sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file()) == [
        "dataset/sequences/00/labels/000000.label", "dataset/sequences/00/velodyne/000000.bin",
        "dataset/sequences/08/labels/000001.label", "dataset/sequences/08/velodyne/000001.bin"]
    write_synthetic_sweeps(tmp_path / "nu", "nuscenes", 4, azimuth_steps=16)
    names = {p.relative_to(tmp_path / "nu").as_posix() for p in (tmp_path / "nu").rglob("*") if p.is_file()}
    assert {"info/nuscenes_infos_10sweeps_train.pkl", "info/nuscenes_infos_10sweeps_val.pkl"} <= names
    assert sum(n.startswith("raw/samples/LIDAR_TOP/") and n.endswith(".pcd.bin") for n in names) == 4
    assert sum(n.startswith("raw/lidarseg/v1.0-trainval/") and n.endswith("_lidarseg.bin") for n in names) == 4
    assert (len(NuScenes(tmp_path / "nu", "train")), len(NuScenes(tmp_path / "nu", "val"))) == (3, 1)
    frames = write_synthetic_sweeps(tmp_path / "wa", "waymo", 2, azimuth_steps=16)
    assert sorted(f.name for f in frames[0].iterdir()) == ["coord.npy", "pose.npy", "segment.npy", "strength.npy"]
    assert frames[0].parent.parent.name == "training" and frames[1].parent.parent.name == "validation"
    assert np.load(frames[0] / "coord.npy")[:, 2].min() > -0.1  # the vehicle frame: ground at z = 0
    with pytest.raises(ValueError, match="flavor must be one of"):
        write_synthetic_sweeps(tmp_path / "x", "kitti", 2)
    with pytest.raises(ValueError, match="sweeps must be >= 2"):
        write_synthetic_sweeps(tmp_path / "x", "waymo", 1)


@pytest.mark.slow
def test_full_semantickitti_sweep_has_about_120k_points(tmp_path):
    """The bench's sweep: the HDL-64E's 64 x 2048 firings."""
    write_synthetic_sweeps(tmp_path, "semantickitti", 2, seed=0)
    sample = SemanticKITTI(tmp_path, "train")[0]
    assert 100_000 < sample.num_points < 131_072


def test_synth_sweeps_command_writes_a_readable_dataset(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ppt", "data", "synth-sweeps", "--flavor", "waymo", "--out",
                          str(tmp_path), "--sweeps", "3", "--azimuth-steps", "12", "--seed", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"wrote 3 waymo sweeps to {tmp_path}: train 2, val 1\n"
    assert len(Waymo(tmp_path, "training")) == 2
    bad = subprocess.run([sys.executable, "-m", "ppt", "data", "synth-sweeps", "--flavor", "waymo", "--out",
                          str(tmp_path / "bad"), "--sweeps", "1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.splitlines()[-1].endswith(
        "argument --sweeps: must be >= 2 (one train and one val sweep), got 1")
    assert not (tmp_path / "bad").exists()
