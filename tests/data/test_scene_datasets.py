"""Scene datasets on generated rooms: splits, names, labels, seeding, and bad files."""

import functools

import numpy as np
import pytest
import torch

from ppt.data import S3DIS, ScanNet, SceneSample, Structured3D, collate_scenes
from ppt.data.scenes import transforms as T
from ppt.data.scenes.rooms import write_synthetic_rooms

pytestmark = pytest.mark.usefixtures("single_thread")

DENSITY = 0.01  # tiny rooms: a few thousand points


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("rooms")
    for flavor, scenes in (("scannet", 4), ("s3dis", 5), ("structured3d", 4)):
        write_synthetic_rooms(base / flavor, flavor, scenes, seed=3, density=DENSITY)
    return base


def test_scannet(roots):
    train, val = ScanNet(roots / "scannet", "train"), ScanNet(roots / "scannet", "val")
    assert (len(train), len(val)) == (3, 1)
    assert len(ScanNet(roots / "scannet", ("train", "val"))) == 4
    sample = train[0]
    assert isinstance(sample, SceneSample) and sample.name == "scene0000_00" and sample.condition == "ScanNet"
    assert sample.coord.dtype == torch.float32 and sample.color.max() > 1 and sample.normal is not None
    assert sample.segment.min() >= -1 and sample.segment.max() < 20 and (sample.segment == -1).any()
    assert train.num_classes == 20 and train.class_names[14] == "refrigerator"


def test_scannet_label_file_fallback(tmp_path):
    folder = tmp_path / "train" / "scene0000_00"
    folder.mkdir(parents=True)
    for name, array in (("coord", np.zeros((2, 3), np.float32)), ("color", np.zeros((2, 3), np.uint8)),
                        ("segment", np.array([3, -1], np.int16))):
        np.save(folder / f"{name}.npy", array)
    sample = ScanNet(tmp_path)[0]
    assert sample.segment.tolist() == [3, -1] and sample.normal is None and sample.instance.tolist() == [-1, -1]


def test_s3dis_holds_out_area_5(roots):
    train, val = S3DIS(roots / "s3dis", "train"), S3DIS(roots / "s3dis", "val")
    assert (len(train), len(val)) == (4, 1)  # rooms go round Area_1, Area_5, Area_2, ...
    assert all(name.startswith("Area_5-") for name in (val.scene_name(p) for p in val.scene_paths))
    assert not any(path.parent.name == "Area_5" for path in train.scene_paths)
    assert len(S3DIS(roots / "s3dis", ["Area_1", "Area_2"])) == 2
    sample = val[0]
    assert sample.condition == "S3DIS" and sample.segment.max() < 13 and (sample.segment == 0).any()  # ceiling
    with pytest.raises(ValueError, match="unknown split 'Area_9'"):
        S3DIS(roots / "s3dis", "Area_9")


def test_structured3d(roots):
    train, val = Structured3D(roots / "structured3d", "train"), Structured3D(roots / "structured3d", "val")
    assert (len(train), len(val)) == (3, 1)
    assert val[0].name == "scene_03000_room_0" and train[0].name == "scene_00000_room_0"
    assert train.num_classes == 25 and (train[0].segment == 16).any()  # ceiling is a Structured3D class


def test_transform_is_seeded_per_item_and_epoch(roots):
    chain = T.Compose([T.RandomRotate(p=1.0), T.GridSample(grid_size=0.1), T.NormalizeColor()])
    dataset = ScanNet(roots / "scannet", "train", transform=chain, seed=11)
    first = dataset[1]
    assert torch.equal(dataset[1].coord, first.coord)
    assert not torch.equal(ScanNet(roots / "scannet", "train", transform=chain, seed=12)[1].coord, first.coord)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1].coord, first.coord)
    with pytest.raises(IndexError):
        dataset[3]


def test_data_loader_workers_match_the_main_process(roots):
    chain = T.Compose([T.RandomScale(), T.GridSample(grid_size=0.1), T.NormalizeColor()])
    dataset = ScanNet(roots / "scannet", "train", transform=chain)
    collate = functools.partial(collate_scenes, feat_keys=("color", "normal"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate)
    batches = list(loader)
    direct = collate([dataset[0], dataset[1]])
    assert batches[0].names == ("scene0000_00", "scene0001_00")
    assert torch.equal(batches[0].feat, direct.feat) and torch.equal(batches[0].offset, direct.offset)


def _scene(tmp_path, n=4, name="scene0000_00", **overrides):
    folder = tmp_path / "train" / name
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"coord": np.zeros((n, 3), np.float32), "color": np.full((n, 3), 9, np.uint8),
              "normal": np.zeros((n, 3), np.float32), "segment20": np.zeros(n, np.int16), "instance": np.zeros(n, np.int64)}
    arrays.update(overrides)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return folder


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    folder = _scene(tmp_path)
    (folder / "color.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"scene0000_00/color.npy: missing"):
        ScanNet(tmp_path)[0]
    _scene(tmp_path)
    (folder / "normal.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"scene0000_00/normal.npy: not a readable .npy array"):
        ScanNet(tmp_path)[0]
    np.save(folder / "normal.npy", np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"normal.npy: expected normals of shape \(N, 3\), got \(4, 2\)"):
        ScanNet(tmp_path)[0]


def test_mismatched_lengths_are_rejected(tmp_path):
    _scene(tmp_path, segment20=np.zeros(3, np.int16))
    with pytest.raises(ValueError, match=r"arrays disagree in length \(coord.npy: 4, color.npy: 4, normal.npy: 4, "
                                         r"instance.npy: 4, segment20.npy: 3\)"):
        ScanNet(tmp_path)[0]


def test_bad_values_are_rejected(tmp_path):
    _scene(tmp_path, segment20=np.array([0, 1, 20, -1], np.int16))
    with pytest.raises(ValueError, match=r"segment20.npy: labels must lie in \[-1, 20\).*got \[-1, 20\]"):
        ScanNet(tmp_path)[0]
    _scene(tmp_path, coord=np.array([[0, 0, np.nan]] * 4, np.float32), segment20=np.zeros(4, np.int16))
    with pytest.raises(ValueError, match="coordinates must be finite"):
        ScanNet(tmp_path)[0]
    _scene(tmp_path, coord=np.zeros((4, 3), np.float32), segment20=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="expected integer labels, got dtype float32"):
        ScanNet(tmp_path)[0]


def test_required_labels_name_the_missing_file(tmp_path):
    for index in range(3):
        _scene(tmp_path, name=f"scene000{index}_00")
    (tmp_path / "train" / "scene0001_00" / "segment20.npy").unlink()
    (tmp_path / "train" / "scene0002_00" / "segment20.npy").unlink()
    assert (ScanNet(tmp_path)[1].segment == -1).all()  # unlabelled scenes read as ignored, as test splits
    with pytest.raises(FileNotFoundError, match=r"ScanNet: .*train/scene0001_00/segment20.npy: missing; this scene "
                                                r"has none of the label files segment20.npy, segment.npy.*"
                                                r"; 2 of 3 scenes of split 'train' have no labels$"):
        ScanNet(tmp_path, require_labels=True)
    np.save(tmp_path / "train" / "scene0001_00" / "segment.npy", np.zeros(4, np.int16))  # ScanNet's fallback file
    np.save(tmp_path / "train" / "scene0002_00" / "segment20.npy", np.zeros(4, np.int16))
    dataset = ScanNet(tmp_path, require_labels=True)
    (tmp_path / "train" / "scene0002_00" / "segment20.npy").unlink()  # gone after the dataset was listed
    with pytest.raises(FileNotFoundError, match=r"scene0002_00/segment20.npy: missing"):
        dataset[2]


def test_scenes_are_recognised_by_their_layout(roots, tmp_path):
    scannet, s3dis, structured3d = (next(iter(cls(roots / flavor, "val").scene_paths)) for cls, flavor in
                                    ((ScanNet, "scannet"), (S3DIS, "s3dis"), (Structured3D, "structured3d")))
    assert [cls.recognises(scannet) for cls in (ScanNet, S3DIS, Structured3D)] == [True, False, False]
    assert [cls.recognises(s3dis) for cls in (ScanNet, S3DIS, Structured3D)] == [False, True, False]
    assert [cls.recognises(structured3d) for cls in (ScanNet, S3DIS, Structured3D)] == [False, False, True]
    # files named after a scene, as ppt predict writes them
    for name, cls in (("scene0707_00.ply", ScanNet), ("Area_5-office_3.ply", S3DIS),
                      ("scene_03000_room_1.ply", Structured3D)):
        assert [other.recognises(tmp_path / name) for other in (ScanNet, S3DIS, Structured3D)] == \
            [other is cls for other in (ScanNet, S3DIS, Structured3D)]
    # a ScanNet scene under another name still holds ScanNet's label file
    renamed = tmp_path / "my_room"
    renamed.mkdir()
    np.save(renamed / "segment20.npy", np.zeros(2, np.int16))
    assert ScanNet.recognises(renamed) and not S3DIS.recognises(renamed) and not Structured3D.recognises(renamed)
    assert not any(cls.recognises(tmp_path / "cloud.ply") for cls in (ScanNet, S3DIS, Structured3D))


def test_missing_root_and_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root"):
        ScanNet(tmp_path / "nowhere")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"split folder .*val does not exist.*\['train'\]"):
        ScanNet(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="no scenes in"):
        ScanNet(tmp_path, "train")
