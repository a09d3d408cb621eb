"""``ppt predict`` on raw LiDAR sweeps through the real command: SemanticKITTI velodyne ``.bin``
files (with the benchmark's ``.label`` output), nuScenes lidar ``.pcd.bin`` files and Waymo frame
folders, each labelled at every input point (points beyond the clip range included), and one-line
errors (rc 2) for input that is not a sweep of the checkpoint's datasets."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from plyfile import PlyData

from ppt.data.sweeps import write_synthetic_sweeps
from ppt.data.sweeps.semantic_kitti import SEMANTIC_KITTI_LEARNING_MAP, SEMANTIC_KITTI_LEARNING_MAP_INV
from tests.engine.conftest import set_options
from tests.engine.test_outdoor_recipes import TINY_SWEEPS


def _ppt(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ppt", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    """A 2-step spunet-semantickitti run on 3 generated sweeps: ``(checkpoint, sweep files, folder)``."""
    folder = tmp_path_factory.mktemp("kitti")
    sweeps = write_synthetic_sweeps(folder / "data", "semantickitti", 3, azimuth_steps=48)
    run = _ppt("train", "spunet-semantickitti", "--out", folder / "run",
               *set_options([f"data.root={folder / 'data'}", *TINY_SWEEPS]), cwd=folder)
    assert run.returncode == 0, run.stderr[-3000:]
    return folder / "run" / "last.safetensors", sweeps, folder


def test_predict_semantickitti_bin_labels_every_point(kitti):
    checkpoint, sweeps, folder = kitti
    labelled = sweeps[0]  # dataset/sequences/00/velodyne/000000.bin, labels/000000.label beside
    scan = np.fromfile(labelled, dtype="<f4").reshape(-1, 4)
    # out of the dataset tree, and with a point far beyond the recipe's 35.2 m clip range
    loose = folder / "loose.bin"
    np.concatenate([scan, [[500.0, -3.0, 0.5, 0.2]]]).astype("<f4").tofile(loose)
    run = _ppt("predict", checkpoint, labelled, loose, "--out", folder / "out", cwd=folder)
    assert run.returncode == 0, run.stderr[-3000:]
    name = f"{labelled.parent.parent.name}_{labelled.stem}"
    assert f"{labelled}: {len(scan)} points as SemanticKITTI, mIoU against its labels" in run.stdout
    assert f"{loose}: {len(scan) + 1} points as SemanticKITTI ->" in run.stdout
    for stem, count in ((name, len(scan)), ("loose", len(scan) + 1)):
        prediction = np.load(folder / "out" / f"{stem}.labels.npy")
        assert prediction.shape == (count,) and prediction.min() >= 0 and prediction.max() < 19
        label = np.fromfile(folder / "out" / f"{stem}.label", dtype="<u4")
        np.testing.assert_array_equal(label, np.asarray(SEMANTIC_KITTI_LEARNING_MAP_INV)[prediction])
        # the raw ids read back through the dataset's learning map give the predicted classes
        np.testing.assert_array_equal([SEMANTIC_KITTI_LEARNING_MAP[int(raw)] for raw in label], prediction)
        vertices = PlyData.read(str(folder / "out" / f"{stem}.ply"))["vertex"]
        assert len(vertices.data) == count
        np.testing.assert_array_equal(vertices["prediction"], prediction)
        assert (folder / "out" / f"{stem}.png").is_file()
    # the far point is written where it was, not on the clip range's face
    assert PlyData.read(str(folder / "out" / "loose.ply"))["vertex"]["x"][-1] == 500.0


def _one_line_error(run):
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    return run.stderr


def test_predict_rejects_what_is_not_a_sweep(kitti):
    checkpoint, sweeps, folder = kitti
    bad = folder / "bad"
    bad.mkdir(exist_ok=True)
    truncated = bad / "truncated.bin"
    truncated.write_bytes(sweeps[0].read_bytes()[:-6])
    nan = bad / "nan.bin"
    np.array([[0.0, 1.0, 0.0, 0.5], [np.nan, 0.0, 0.0, 0.5]], dtype="<f4").tofile(nan)
    ply = bad / "cloud.ply"
    ply.write_text("not a ply")
    for path, message in ((truncated, "is not a whole number of velodyne scan"),
                          (nan, "coordinates must be finite"),
                          (ply, "a SemanticKITTI sweep is a velodyne scan .bin file"),
                          (sweeps[0].parent, "a SemanticKITTI sweep is a velodyne scan .bin file"),
                          (bad / "missing.bin", "no such file or folder")):
        error = _one_line_error(_ppt("predict", checkpoint, path, "--out", folder / "out-bad", cwd=folder))
        assert str(path) in error and message in error


def test_joint_outdoor_checkpoint_predicts_each_datasets_sweeps(tmp_path):
    """ppt-joint-outdoor: a nuScenes .pcd.bin (5 columns) and a Waymo frame folder are recognised by
    their layout; a .bin out of any layout needs --condition."""
    roots = {flavor: tmp_path / flavor for flavor in ("nuscenes", "semantickitti", "waymo")}
    sweeps = {flavor: write_synthetic_sweeps(root, flavor, 2, azimuth_steps=48) for flavor, root in roots.items()}
    overrides = [*(f"data.sources.{flavor}.root={root}" for flavor, root in roots.items()), *TINY_SWEEPS,
                 "model.ppt.context_channels=8"]
    run = _ppt("train", "ppt-joint-outdoor", "--out", tmp_path / "run", *set_options(overrides), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = tmp_path / "run" / "last.safetensors"
    lidar, frame = sweeps["nuscenes"][0], sweeps["waymo"][0]
    points = np.fromfile(lidar, dtype="<f4").reshape(-1, 5)
    predicted = _ppt("predict", checkpoint, lidar, frame, "--out", tmp_path / "out", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert f"{lidar}: {len(points)} points as nuScenes ->" in predicted.stdout
    assert "points as Waymo, mIoU against its labels" in predicted.stdout  # segment.npy beside coord.npy
    nuscenes = np.load(tmp_path / "out" / f"{lidar.name.removesuffix('.pcd.bin')}.labels.npy")
    assert nuscenes.shape == (len(points),) and nuscenes.max() < 16
    waymo = np.load(tmp_path / "out" / f"{frame.parent.name}_{frame.name}.labels.npy")
    assert waymo.shape == (np.load(frame / "coord.npy").shape[0],) and waymo.max() < 22
    assert not list((tmp_path / "out").glob("*.label"))  # the benchmark format is SemanticKITTI's only

    loose = tmp_path / "scan.bin"
    shutil.copy(sweeps["semantickitti"][0], loose)
    error = _one_line_error(_ppt("predict", checkpoint, loose, "--out", tmp_path / "out", cwd=tmp_path))
    assert "choose whose classes to predict with --condition" in error
    chosen = _ppt("predict", checkpoint, loose, "--condition", "SemanticKITTI", "--out", tmp_path / "out", cwd=tmp_path)
    assert chosen.returncode == 0, chosen.stderr[-3000:]
    assert 4 * (tmp_path / "out" / "scan.label").stat().st_size == loose.stat().st_size  # a uint32 per 16-byte point
    wrong = _one_line_error(_ppt("predict", checkpoint, loose, "--condition", "Waymo", "--out", tmp_path / "out",
                                 cwd=tmp_path))
    assert "a Waymo sweep is a frame folder" in wrong
