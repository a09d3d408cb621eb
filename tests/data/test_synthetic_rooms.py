"""Synthetic rooms: determinism, native labels, flavors that differ as the real datasets do, the
on-disk layout and ``ppt data synth-rooms``."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from ppt.cli import main
from ppt.data.scenes.rooms import FLAVORS, synthesize_room, write_synthetic_rooms
from ppt.ops import knn

pytestmark = pytest.mark.usefixtures("single_thread")


def test_deterministic_per_seed():
    a, b, c = (synthesize_room("scannet", seed, density=0.05) for seed in (4, 4, 5))
    for field in ("coord", "color", "normal", "segment", "instance"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert a.coord.shape != c.coord.shape or not np.array_equal(a.coord, c.coord)


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_labels_in_native_order(flavor):
    names = FLAVORS[flavor].class_names
    seen = set()
    for seed in range(3):
        room = synthesize_room(flavor, seed, density=0.02)
        assert room.coord.dtype == np.float32 and room.color.dtype == np.uint8
        assert room.segment.min() >= -1 and room.segment.max() < len(names)
        np.testing.assert_allclose(np.linalg.norm(room.normal, axis=1), 1.0, rtol=1e-5)
        seen |= {names[i] for i in np.unique(room.segment) if i >= 0}
    assert {"wall", "floor", "door"} <= seen
    assert ("ceiling" in seen) == (flavor != "scannet")  # ScanNet-20 has no ceiling class
    assert len(seen) >= 7  # furniture classes too


def test_scannet_ignores_classes_outside_its_20_and_sees_little_ceiling():
    banded = synthesize_room("scannet", 0, room_type="bedroom", density=0.1)
    full = synthesize_room(dataclasses.replace(FLAVORS["scannet"], ceiling_band=None), 0, room_type="bedroom", density=0.1)

    def ceiling(room):
        return (room.coord[:, 2] > room.coord[:, 2].max() - 0.1) & (room.normal[:, 2] < -0.5)

    assert (banded.segment[ceiling(banded)] == -1).all()  # ScanNet-20 has no ceiling class
    assert 0 < ceiling(banded).sum() < 0.5 * ceiling(full).sum()  # only a band near the walls is captured
    assert (~ceiling(banded)).sum() == (~ceiling(full)).sum()
    assert (banded.segment == -1).any() and (full.segment[~ceiling(full)] == -1).any()  # pillows, lamps ...


def _spacing(coord: np.ndarray) -> float:
    """Median distance from a point to its nearest neighbour (over 1000 of them)."""
    points = torch.from_numpy(coord)[None]
    queries = points[:, torch.randperm(points.shape[1], generator=torch.Generator().manual_seed(0))[:1000]]
    dist2, _ = knn(queries, points, 2)
    return float(dist2[0, :, 1].sqrt().median())


def test_density_noise_and_colour_differ_by_flavor():
    rooms = {flavor: synthesize_room(flavor, 1, room_type=rtype, density=0.05)
             for flavor, rtype in (("scannet", "office"), ("s3dis", "office"), ("structured3d", "study"))}
    spacing = {flavor: _spacing(room.coord) for flavor, room in rooms.items()}
    assert spacing["s3dis"] < spacing["structured3d"] < spacing["scannet"]
    # Floors: a rendered floor is exactly flat, scans are noisy.
    floor_z = {flavor: room.coord[room.segment == FLAVORS[flavor].class_names.index("floor"), 2]
               for flavor, room in rooms.items()}
    assert np.all(floor_z["structured3d"] == 0)
    assert floor_z["scannet"].std() > 2 * floor_z["s3dis"].std() > 0.002
    # Colours: flat-shaded renders give one colour per surface; scans vary.
    s3d = rooms["structured3d"]
    floor = s3d.segment == FLAVORS["structured3d"].class_names.index("floor")
    assert len(np.unique(s3d.color[floor], axis=0)) == 1
    scan_floor = rooms["scannet"].color[rooms["scannet"].segment == 1].astype(float)
    assert scan_floor.std(0).mean() > 5


def _wall_heading(room) -> float:
    """Median angle (degrees, in [0, 90)) of the wall normals against the x axis."""
    walls = room.normal[room.segment == 0]
    return float(np.median(np.degrees(np.arctan2(walls[:, 1], walls[:, 0])) % 90))


def test_aligned_flavors_have_axis_aligned_walls():
    for flavor in ("structured3d", "s3dis"):
        room = synthesize_room(flavor, 2, density=0.05)
        normals = np.abs(room.normal[room.segment == FLAVORS[flavor].class_names.index("wall")])
        assert np.all(np.isclose(normals.max(1), 1.0, atol=0.2 if flavor == "s3dis" else 1e-6))
    # ScanNet scans keep the sensor's heading; coordinates start at 0 in x and y.
    headings = [_wall_heading(synthesize_room("scannet", seed, density=0.05)) for seed in range(4)]
    assert any(5 < heading < 85 for heading in headings) and len({round(h) for h in headings}) == 4
    scan = synthesize_room("scannet", 2, density=0.05)
    assert math.isclose(float(scan.coord[:, 0].min()), 0.0, abs_tol=1e-6) and math.isclose(float(scan.coord[:, 1].min()), 0.0, abs_tol=1e-6)


def test_written_layout_matches_pointcept_preprocessing(tmp_path):
    write_synthetic_rooms(tmp_path / "scannet", "scannet", 14, seed=1, density=0.01)  # 10 / 3 / 1
    # the split folders, and tasks/ with the data-efficient lists where Pointcept's README puts them
    assert sorted(p.name for p in (tmp_path / "scannet").iterdir()) == ["tasks", "test", "train", "val"]
    test_scene = next((tmp_path / "scannet" / "test").iterdir())
    assert sorted(p.name for p in test_scene.iterdir()) == ["color.npy", "coord.npy", "normal.npy"]  # no labels
    train_scene = tmp_path / "scannet" / "train" / "scene0000_00"
    segment = np.load(train_scene / "segment20.npy")
    assert segment.dtype == np.int16 and segment.ndim == 1 and np.load(train_scene / "instance.npy").dtype == np.int64
    assert np.load(train_scene / "segment200.npy").shape == segment.shape

    s3dis = write_synthetic_rooms(tmp_path / "s3dis", "s3dis", 2, seed=1, density=0.01)
    assert [p.parent.name for p in s3dis] == ["Area_1", "Area_5"]
    assert sorted(p.name for p in (tmp_path / "s3dis").iterdir()) == [f"Area_{i}" for i in range(1, 7)]
    assert np.load(s3dis[0] / "segment.npy").shape[1] == 1 and np.load(s3dis[0] / "instance.npy").dtype == np.int16

    s3d = write_synthetic_rooms(tmp_path / "s3d", "structured3d", 2, seed=1, density=0.01)
    assert [p.relative_to(tmp_path / "s3d").as_posix() for p in s3d] == ["train/scene_00000/room_0",
                                                                          "val/scene_03000/room_0"]
    assert not (s3d[0] / "instance.npy").exists() and np.load(s3d[0] / "color.npy").dtype == np.uint8


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth-rooms", "--flavor", "structured3d", "--out", str(tmp_path), "--scenes", "3",
              "--seed", "2", "--density", "0.01"])
    assert exit_info.value.code == 0
    assert "wrote 3 structured3d rooms (25 classes)" in capsys.readouterr().out
    again = tmp_path / "again"
    with pytest.raises(SystemExit):
        main(["data", "synth-rooms", "--flavor", "structured3d", "--out", str(again), "--scenes", "3", "--seed", "2",
              "--density", "0.01"])
    first = sorted(tmp_path.glob("train/*/*/coord.npy"))
    assert first and all(np.array_equal(np.load(p), np.load(again / p.relative_to(tmp_path))) for p in first)
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth-rooms", "--flavor", "kitti", "--out", str(tmp_path), "--scenes", "1"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["data", "synth-rooms", "--flavor", "s3dis", "--out", str(tmp_path), "--scenes", "0"])
    assert "must be >= 1" in capsys.readouterr().err
