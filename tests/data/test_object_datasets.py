"""Object datasets on small files written in the real on-disk formats."""

import pickle

import h5py
import numpy as np
import pytest
import torch

from ppt.data import (
    MODELNET40_CLASSES,
    SCANOBJECTNN_CLASSES,
    ModelNet40,
    ModelNetFewShot,
    ScanObjectNN,
    ShapeNet55,
    ObjectSample,
    RandomSubsample,
    ShufflePoints,
    collate_objects,
    normalize_unit_sphere,
    scanobjectnn_file,
)
from ppt.data.objects.scanobjectnn import write_scanobjectnn_h5
from ppt.ops import farthest_point_sample


def _unit_sphere(points):
    centred = points - points.mean(axis=0)
    return centred / np.linalg.norm(centred, axis=1).max()


# ----------------------------------------------------------------------------------------------
# ScanObjectNN


@pytest.mark.parametrize(("variant", "expected"), [
    ("PB_T50_RS", "main_split/training_objectdataset_augmentedrot_scale75.h5"),
    ("OBJ_BG", "main_split/training_objectdataset.h5"),
    ("OBJ_ONLY", "main_split_nobg/training_objectdataset.h5"),
])
def test_scanobjectnn_official_file_names(variant, expected):
    assert scanobjectnn_file(variant, "train").as_posix() == expected
    assert scanobjectnn_file(variant, "test").as_posix() == expected.replace("training_", "test_")


def _write_variant(root, variant, split, count, seed):
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((count, 64, 3)).astype(np.float32)
    labels = rng.integers(0, 15, count)
    write_scanobjectnn_h5(root / scanobjectnn_file(variant, split), points, labels, np.zeros((count, 64), np.int64))
    return points, labels


@pytest.mark.parametrize("variant", ["PB_T50_RS", "OBJ_BG", "OBJ_ONLY"])
def test_scanobjectnn_reads_each_variant_by_its_files(tmp_path, variant):
    written = {}
    for seed, (other, split) in enumerate([(v, s) for v in ("PB_T50_RS", "OBJ_BG", "OBJ_ONLY") for s in ("train", "test")]):
        written[other, split] = _write_variant(tmp_path, other, split, 5 + seed, seed)
    for split in ("train", "test"):
        dataset = ScanObjectNN(tmp_path, split, variant)
        points, labels = written[variant, split]
        assert len(dataset) == len(labels) and dataset.class_names == SCANOBJECTNN_CLASSES
        for index in (0, len(labels) - 1):
            sample = dataset[index]
            np.testing.assert_array_equal(sample.points.numpy(), points[index])
            assert sample.label == labels[index] and sample.points.dtype == torch.float32
    with h5py.File(dataset.path) as file:  # written with the keys and dtypes of the published files
        assert file["data"].dtype == np.float32 and file["label"].dtype == np.int64 and "mask" in file


def test_scanobjectnn_root_may_be_the_variant_folder(tmp_path):
    points, _ = _write_variant(tmp_path, "OBJ_ONLY", "test", 3, 0)
    dataset = ScanObjectNN(tmp_path / "main_split_nobg", "test", "OBJ_ONLY")
    np.testing.assert_array_equal(dataset[2].points.numpy(), points[2])
    flat = tmp_path / "flat"
    flat.mkdir()
    (tmp_path / scanobjectnn_file("OBJ_ONLY", "test")).rename(flat / "test_objectdataset_augmentedrot_scale75.h5")
    assert len(ScanObjectNN(flat, "test", "PB_T50_RS")) == 3  # PB_T50_RS file names are unique
    with pytest.raises(FileNotFoundError, match="OBJ_BG test.*main_split/test_objectdataset.h5"):
        ScanObjectNN(flat, "test", "OBJ_BG")  # OBJ_BG and OBJ_ONLY share names: the folder decides


def test_scanobjectnn_bad_input(tmp_path):
    with pytest.raises(ValueError, match="variant must be one of"):
        ScanObjectNN(tmp_path, "train", "OBJ")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        ScanObjectNN(tmp_path, "val", "OBJ_BG")
    path = tmp_path / scanobjectnn_file("OBJ_BG", "train")
    write_scanobjectnn_h5(path, np.zeros((2, 8, 3)), np.array([0, 15]), np.zeros((2, 8)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 15\), got \[0, 15\]"):
        ScanObjectNN(tmp_path, "train", "OBJ_BG")
    with h5py.File(path, "w") as file:
        file.create_dataset("points", data=np.zeros((2, 8, 3)))
    with pytest.raises(ValueError, match=r"missing dataset\(s\) \['data', 'label'\]"):
        ScanObjectNN(tmp_path, "train", "OBJ_BG")


def test_items_are_reproducible_per_epoch_and_collate(tmp_path):
    _write_variant(tmp_path, "OBJ_BG", "train", 4, 0)
    dataset = ScanObjectNN(tmp_path, "train", "OBJ_BG", transform=ShufflePoints(), seed=3)
    first = dataset[1].points
    assert torch.equal(first, dataset[1].points)
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[1].points)
    assert torch.equal(first.sort(dim=0).values, dataset[1].points.sort(dim=0).values)
    batch = collate_objects([dataset[i] for i in range(4)])
    points, labels = batch
    assert points.shape == (4, 64, 3) and labels.dtype == torch.int64 and labels.tolist() == dataset.labels.tolist()
    with pytest.raises(IndexError):
        dataset[4]


# ----------------------------------------------------------------------------------------------
# ModelNet40


CLASSES = ("airplane", "bathtub", "night_stand")


def _modelnet_text_layout(root, rng, per_class=2, points=96):
    root.mkdir()
    (root / "modelnet40_shape_names.txt").write_text("\n".join(CLASSES) + "\n")
    clouds = {}
    for split in ("train", "test"):
        names = []
        for name in CLASSES:
            (root / name).mkdir(exist_ok=True)
            for _ in range(per_class):
                shape_id = f"{name}_{len(names) + (1 if split == 'train' else 100):04d}"
                cloud = np.concatenate([rng.uniform(-3, 3, (points, 3)), rng.standard_normal((points, 3))], axis=1)
                np.savetxt(root / name / f"{shape_id}.txt", cloud, delimiter=",", fmt="%.6f")
                clouds[shape_id] = np.loadtxt(root / name / f"{shape_id}.txt", delimiter=",", dtype=np.float32)
                names.append(shape_id)
        (root / f"modelnet40_{split}.txt").write_text("\n".join(names) + "\n")
    return clouds


def test_modelnet40_text_layout_fps_and_cache(tmp_path):
    root = tmp_path / "modelnet40_normal_resampled"
    clouds = _modelnet_text_layout(root, np.random.default_rng(0))
    dataset = ModelNet40(root, "test", num_points=32, write_cache=True)
    assert dataset.class_names == CLASSES and len(dataset) == 6
    for index, shape_id in enumerate(dataset.names):
        cloud = clouds[shape_id]
        chosen = farthest_point_sample(torch.from_numpy(cloud[None, :, :3].copy()), 32)[0].numpy()
        sample = dataset[index]
        np.testing.assert_allclose(sample.points.numpy(), _unit_sphere(cloud[chosen, :3]), atol=1e-6)
        assert sample.label == CLASSES.index(shape_id.rsplit("_", 1)[0]) and sample.name == shape_id

    # The cache is Point-MAE's pickle: [list of (P, 6) float32, list of (1,) int32 labels].
    cache = root / "modelnet40_test_32pts_fps.dat"
    with cache.open("rb") as file:
        points, labels = pickle.load(file)
    assert points[0].shape == (32, 6) and points[0].dtype == np.float32
    assert labels[0].shape == (1,) and labels[0].dtype == np.int32

    for name in CLASSES:  # from now on only the cache can serve the items
        for text in (root / name).iterdir():
            text.unlink()
    cached = ModelNet40(root, "test", num_points=32)
    for index in range(len(dataset)):
        assert torch.equal(cached[index].points, dataset[index].points)
        assert cached[index].label == dataset[index].label


def test_modelnet40_errors(tmp_path):
    root = tmp_path / "modelnet40_normal_resampled"
    _modelnet_text_layout(root, np.random.default_rng(1), per_class=1, points=16)
    with pytest.raises(ValueError, match="fewer than num_points=32"):
        ModelNet40(root, "train", num_points=32)
    (root / "modelnet40_train.txt").write_text("chair_0001\n")
    with pytest.raises(ValueError, match="names class 'chair'"):
        ModelNet40(root, "train", num_points=8)
    (root / "modelnet40_train_8192pts_fps.dat").write_bytes(pickle.dumps({"points": []}))
    with pytest.raises(ValueError, match="expected \\[list of point arrays, list of labels\\]"):
        ModelNet40(root, "train")


def _few_shot_fold(root, way, shot, fold, rng):
    sources = rng.choice(40, way, replace=False)
    content = {split: [(rng.standard_normal((64, 6)).astype(np.float32), label, np.int32(sources[label]))
                       for label in range(way) for _ in range(count)]
               for split, count in (("train", shot), ("test", 3))}
    path = root / f"{way}way_{shot}shot" / f"{fold}.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(content))
    return content, sources


def test_modelnet_few_shot_fold(tmp_path):
    content, sources = _few_shot_fold(tmp_path, 5, 2, 7, np.random.default_rng(0))
    dataset = ModelNetFewShot(tmp_path, way=5, shot=2, fold=7, split="train")
    assert len(dataset) == 10 and dataset.num_classes == 5
    assert dataset.class_names == tuple(MODELNET40_CLASSES[s] for s in sources)
    points, label, _ = content["train"][3]
    sample = dataset[3]
    assert sample.label == label
    np.testing.assert_allclose(sample.points.numpy(), _unit_sphere(points[:, :3]), atol=1e-6)
    assert len(ModelNetFewShot(tmp_path, 5, 2, 7, split="test")) == 15
    with pytest.raises(FileNotFoundError, match="10way_2shot/7.pkl"):
        ModelNetFewShot(tmp_path, 10, 2, 7)


# ----------------------------------------------------------------------------------------------
# ShapeNet-55


def test_shapenet55_layout(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "shapenet_pc").mkdir()
    (tmp_path / "ShapeNet-55").mkdir()
    files = {"train": ["02691156-aaa.npy", "03001627-bbb.npy", "02691156-ccc.npy"], "test": ["04379243-ddd.npy"]}
    clouds = {}
    for split, names in files.items():
        for name in names:
            clouds[name] = rng.uniform(-2, 5, (256, 3)).astype(np.float32)
            np.save(tmp_path / "shapenet_pc" / name, clouds[name])
        (tmp_path / "ShapeNet-55" / f"{split}.txt").write_text("\n".join(names) + "\n")
    dataset = ShapeNet55(tmp_path, "train", num_points=64, seed=1)
    assert len(dataset) == 3 and dataset.class_names == ("02691156", "03001627", "04379243")
    sample = dataset[1]
    assert sample.points.shape == (64, 3) and sample.label == 1 and sample.name == "03001627-bbb"
    assert torch.allclose(sample.points.norm(dim=1).max(), torch.tensor(1.0)) and sample.points.mean(0).abs().max() < 1e-5
    # The item is a random subset drawn with the item's generator, then normalised.
    stored = ObjectSample(torch.from_numpy(clouds["03001627-bbb.npy"]), 1, "03001627-bbb")
    subset = RandomSubsample(64)(stored, dataset.generator(1)).points
    assert torch.allclose(sample.points, normalize_unit_sphere(subset))
    assert torch.allclose(dataset.load(1).points, normalize_unit_sphere(stored.points))
    assert torch.equal(dataset[1].points, sample.points)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1].points, sample.points)
    (tmp_path / "shapenet_pc" / files["train"][2]).unlink()
    with pytest.raises(FileNotFoundError, match="02691156-ccc.npy"):
        dataset[2]

