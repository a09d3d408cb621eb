"""ShapeNetPart in its official layout: the synthetic writer, the reader, normalisation, sampling
and the ``ppt data synth-parts`` command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ppt.data import (SHAPENETPART_CATEGORIES, SHAPENETPART_PARTS, SHAPENETPART_SYNSETS, ShapeNetPart,
                      category_part_mask, collate_parts)
from ppt.data.objects.synthetic import _box, _Cylinder, _Ellipsoid, _TorusArc
from ppt.data.objects.synthetic_parts import _normals, synthesize_part_object, write_synthetic_shapenet_part


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapenetpart")
    write_synthetic_shapenet_part(out, train_per_class=2, val_per_class=1, test_per_class=1, num_points=256)
    return out


def test_layout_is_the_official_one(root):
    rows = [line.split("\t") for line in (root / "synsetoffset2category.txt").read_text().splitlines()]
    assert rows == [[c, s] for c, s in zip(SHAPENETPART_CATEGORIES, SHAPENETPART_SYNSETS)]
    for split, per_class in (("train", 2), ("val", 1), ("test", 1)):
        entries = json.loads((root / "train_test_split" / f"shuffled_{split}_file_list.json").read_text())
        assert len(entries) == 16 * per_class
        for entry in entries:
            prefix, synset, shape_id = entry.split("/")
            assert prefix == "shape_data" and len(shape_id) == 32
            assert (root / synset / f"{shape_id}.txt").is_file()
    chair = next((root / "03001627").glob("*.txt"))
    data = np.loadtxt(chair)
    assert data.shape[1] == 7 and 256 <= data.shape[0] <= 320
    assert set(data[:, 6].astype(int)) <= set(SHAPENETPART_PARTS["Chair"])
    np.testing.assert_allclose(np.linalg.norm(data[:, 3:6], axis=1), 1.0, atol=1e-5)


def test_16_categories_and_50_parts():
    assert len(SHAPENETPART_CATEGORIES) == 16 and sum(len(p) for p in SHAPENETPART_PARTS.values()) == 50
    assert SHAPENETPART_PARTS["Airplane"] == (0, 1, 2, 3) and SHAPENETPART_PARTS["Table"] == (47, 48, 49)
    assert SHAPENETPART_PARTS["Motorbike"] == (30, 31, 32, 33, 34, 35)
    mask = category_part_mask()
    assert mask.shape == (16, 50) and mask.sum(0).eq(1).all() and mask[4, 12:16].all()


def test_every_category_builds_its_parts_with_unit_normals():
    rng = np.random.default_rng(0)
    for category, name in enumerate(SHAPENETPART_CATEGORIES):
        rows = synthesize_part_object(category, rng, 4000)
        parts = set(rows[:, 6].astype(int))
        assert parts <= set(SHAPENETPART_PARTS[name]) and len(parts) >= 2, name
        np.testing.assert_allclose(np.linalg.norm(rows[:, 3:6], axis=1), 1.0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("primitive, centre", [
    (_box((0.1, 0.2, 0.3), (0.4, 0.1, 0.8)), lambda p: np.array([0.1, 0.2, 0.3])),
    (_Cylinder((0.0, 0.5, 0.0), 0.2, 0.6, "x"), lambda p: np.array([0.3, 0.5, 0.0])),
    (_Cylinder((0.1, 0.0, 0.1), 0.3, 0.4, "y"), lambda p: np.array([0.1, 0.2, 0.1])),
    (_Ellipsoid((0.0, 0.1, 0.0), (0.3, 0.1, 0.5)), lambda p: np.array([0.0, 0.1, 0.0])),
    # a torus's outward direction is away from the nearest point of its centre ring
    (_TorusArc((0.0, 0.0, 0.0), 0.5, 0.05, "x"),
     lambda p: np.stack([np.zeros(len(p)), *(0.5 * p[:, 1:] / np.linalg.norm(p[:, 1:], axis=1, keepdims=True)).T], 1)),
])
def test_primitive_normals_point_outward(primitive, centre):
    points = primitive.sample(2000, np.random.default_rng(1))
    normals = _normals(primitive, points)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)
    assert (((points - centre(points)) * normals).sum(1) > 0).all()
    if isinstance(primitive, _Ellipsoid):  # the gradient of the implicit surface
        gradient = (points - np.array(primitive.center)) / np.square(primitive.radii)
        np.testing.assert_allclose(normals, gradient / np.linalg.norm(gradient, axis=1, keepdims=True))


def test_writer_is_deterministic_and_validates(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        write_synthetic_shapenet_part(out, seed=3, train_per_class=1, val_per_class=1, test_per_class=1, num_points=64)
    files = sorted(p.relative_to(a) for p in a.rglob("*.txt"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.txt")) and len(files) == 16 * 3 + 1
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    with pytest.raises(ValueError, match="train_per_class must be >= 1"):
        write_synthetic_shapenet_part(tmp_path / "c", train_per_class=0)


def test_reader_normalises_and_draws_2048_points(root):
    train = ShapeNetPart(root, "train")
    assert len(train) == 32 and len(ShapeNetPart(root, "trainval")) == 48 and len(ShapeNetPart(root, "test")) == 16
    stored = train.read(0)
    assert stored.points.shape[0] >= 256
    torch.testing.assert_close(stored.points.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert stored.points.norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-5)
    sample = train[0]
    assert sample.points.shape == (2048, 3) and sample.normals.shape == (2048, 3) and sample.parts.shape == (2048,)
    assert sample.category == SHAPENETPART_CATEGORIES.index("Airplane") and sample.name.startswith("02691156/")
    # drawn from the stored points, with replacement (2048 > the file's points), the same on every call
    stored_rows = {tuple(p) for p in stored.points.tolist()}
    assert all(tuple(p) in stored_rows for p in sample.points.tolist())
    torch.testing.assert_close(train[0].points, sample.points)
    train.set_epoch(1)
    assert not torch.equal(train[0].points, sample.points)
    # augmentation: one scale in [0.8, 1.25] and one shift in [-0.1, 0.1] per cloud
    augmented = ShapeNetPart(root, "train", augment=True)[0]
    plain = ShapeNetPart(root, "train")[0]
    scale = (augmented.points[1] - augmented.points[0]) / (plain.points[1] - plain.points[0])
    assert torch.allclose(scale, scale[0].expand(3), atol=1e-3) and 0.8 <= scale[0] <= 1.25
    shift = augmented.points[0] - plain.points[0] * scale[0]
    assert shift.abs().max() <= 0.1 + 1e-5
    torch.testing.assert_close(augmented.normals, plain.normals)
    batch = collate_parts([train[0], train[1]])
    assert batch.points.shape == (2, 2048, 3) and batch.categories.tolist() == [0, 0] and batch.parts.shape == (2, 2048)
    whole = ShapeNetPart(root, "test", num_points=None)[0]
    assert whole.points.shape[0] == whole.parts.shape[0] >= 256


def test_reader_rejects_bad_layouts(root, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        ShapeNetPart(root, "validation")
    with pytest.raises(FileNotFoundError, match="synsetoffset2category.txt does not exist"):
        ShapeNetPart(tmp_path, "train")
    bad = tmp_path / "bad"
    write_synthetic_shapenet_part(bad, train_per_class=1, val_per_class=1, test_per_class=1, num_points=32)
    dataset = ShapeNetPart(bad, "trainval", num_points=None)
    index, table = next((i, path) for i, (_, path) in enumerate(dataset.files) if path.parent.name == "04379243")
    rows = np.loadtxt(table)
    rows[0, 6] = 3  # an airplane part on a table
    np.savetxt(table, rows)
    with pytest.raises(ValueError, match="part ids must lie in 47..49 for Table"):
        dataset[index]


def test_synth_parts_command(tmp_path):
    out = tmp_path / "parts"
    run = subprocess.run([sys.executable, "-m", "ppt", "data", "synth-parts", "--out", str(out), "--train-per-class",
                          "1", "--val-per-class", "1", "--test-per-class", "1", "--points", "64"],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert str(out / "synsetoffset2category.txt") in run.stdout
    assert len(ShapeNetPart(out, "test")) == 16
