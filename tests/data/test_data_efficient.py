"""The ScanNet data-efficient benchmark's inputs: the official file formats round-trip, malformed and
malicious files are refused, the seeded generator, and limited scenes / labelled points through the
dataset, the transforms and collation."""

import os
import zipfile

import numpy as np
import pytest
import torch

from ppt.data import ScanNet, collate_scenes
from ppt.data.scenes import transforms as T
from ppt.data.scenes.data_efficient import (labelled_points_path, read_labelled_points, read_scene_list,
                                            resolve_limited, sample_labelled_points, sample_scene_list,
                                            scene_list_path, write_data_efficient_lists, write_labelled_points,
                                            write_scene_list)
from ppt.data.scenes.rooms import write_synthetic_rooms


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    """Five synthetic ScanNet rooms (three train) with the benchmark's lists in tasks/."""
    root = tmp_path_factory.mktemp("rooms")
    write_synthetic_rooms(root, "scannet", 5, seed=3, density=0.1)
    return root


def test_scene_list_round_trips_in_the_official_format(tmp_path):
    path = write_scene_list(scene_list_path(tmp_path, 5), ["scene0000_00", "scene0191_01"])
    assert path == tmp_path / "scenes" / "5.txt"
    assert path.read_text() == "scene0000_00\nscene0191_01\n"
    assert read_scene_list(path) == ["scene0000_00", "scene0191_01"]
    assert list(np.loadtxt(path, dtype=str)) == ["scene0000_00", "scene0191_01"]  # as Pointcept reads it
    path.write_text("scene0000_00\n\nscene0000_00\n")
    with pytest.raises(ValueError, match="names 'scene0000_00' more than once"):
        read_scene_list(path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="no scene names"):
        read_scene_list(path)
    with pytest.raises(FileNotFoundError, match="1.txt does not exist"):
        read_scene_list(scene_list_path(tmp_path, 1))


def test_labelled_points_round_trip_in_the_official_format(tmp_path):
    points = {"scene0000_00": np.array([3, 17, 2], dtype=np.int64), "scene0001_00": np.arange(5)}
    path = write_labelled_points(labelled_points_path(tmp_path, 20), points)
    assert path == tmp_path / "points" / "points20"
    raw = torch.load(path, weights_only=False)  # what the benchmark ships: a dict of int64 NumPy arrays
    assert set(raw) == set(points) and all(isinstance(v, np.ndarray) and v.dtype == np.int64 for v in raw.values())
    read = read_labelled_points(path)
    assert set(read) == set(points) and all(np.array_equal(read[k], points[k]) for k in points)
    torch.save({"scene0000_00": torch.tensor([1, 2]), "scene0001_00": [4, 5]}, path)  # tensors and lists read too
    assert [v.tolist() for v in read_labelled_points(path).values()] == [[1, 2], [4, 5]]

    # the published files were written by NumPy 1.x, whose pickles name numpy.core (NumPy 2: numpy._core)
    write_labelled_points(path, points)
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    pickled = next(name for name in entries if name.endswith("data.pkl"))
    assert b"numpy._core.multiarray" in entries[pickled] or b"numpy.core.multiarray" in entries[pickled]
    entries[pickled] = entries[pickled].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    numpy1 = tmp_path / "points-numpy1"
    with zipfile.ZipFile(numpy1, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    assert all(np.array_equal(read_labelled_points(numpy1)[k], points[k]) for k in points)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_labelled_points_refuse_malformed_and_malicious_files(tmp_path):
    path = tmp_path / "points20"
    marker = tmp_path / "pwned"
    torch.save({"scene0000_00": _Payload(str(marker))}, path)
    with pytest.raises(ValueError, match=r"weights_only=True\) reads \(.*GLOBAL posix.mkdir"):
        read_labelled_points(path)
    assert not marker.exists()  # nothing from the file ran
    for content, message in (([1, 2], "expected a non-empty dict"), ({}, "expected a non-empty dict"),
                             ({"scene0000_00": np.zeros((2, 2), dtype=np.int64)}, "1-D integer point indices"),
                             ({"scene0000_00": np.array([0.5])}, "1-D integer point indices"),
                             ({"scene0000_00": np.array([-1, 3])}, "negative point index -1")):
        torch.save(content, path)
        with pytest.raises(ValueError, match=message):
            read_labelled_points(path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="points20: not a torch file"):
        read_labelled_points(path)
    with pytest.raises(FileNotFoundError, match="points50 does not exist"):
        read_labelled_points(tmp_path / "points50")


def test_settings_resolve_to_the_official_files(tmp_path):
    assert resolve_limited("lr10", tmp_path) == ("lr", tmp_path / "scenes" / "10.txt")
    assert resolve_limited("la200", tmp_path) == ("la", tmp_path / "points" / "points200")
    with pytest.raises(ValueError, match="limited must be lr<percent>.*got 'lr'"):
        resolve_limited("lr", tmp_path)


def test_generator_is_seeded_nested_and_draws_labelled_points():
    names = [f"scene{i:04d}_00" for i in range(200)]
    one, five = sample_scene_list(names, 1, seed=4), sample_scene_list(names, 5, seed=4)
    assert len(one) == 2 and len(five) == 10 and set(one) <= set(five)
    assert one == sorted(one) and five == sample_scene_list(names, 5, seed=4) != sample_scene_list(names, 5, seed=5)
    assert len(sample_scene_list(names[:3], 1)) == 1  # at least one scene
    assert sample_scene_list(names[:3], 1, minimum=2) == sample_scene_list(names[:3], 50, minimum=2)
    assert len(sample_scene_list(names[:3], 1, minimum=2)) == 2 and len(sample_scene_list(names[:3], 1, minimum=9)) == 3
    segment = np.full(1000, -1)
    segment[::3] = 7
    twenty, fifty = (sample_labelled_points("scene0000_00", segment, k, seed=0) for k in (20, 50))
    assert len(twenty) == 20 and len(set(twenty.tolist())) == 20 and set(twenty) <= set(fifty)
    assert (segment[fifty] >= 0).all() and twenty.dtype == np.int64 and (np.diff(twenty) > 0).all()
    assert np.array_equal(sample_labelled_points("scene0000_00", segment, 20, seed=0), twenty)
    assert not np.array_equal(sample_labelled_points("scene0001_00", segment, 20, seed=0), twenty)
    assert len(sample_labelled_points("s", segment, 5000)) == 334  # all labelled points when there are fewer
    with pytest.raises(ValueError, match="percent must be in"):
        sample_scene_list(names, 0)


def test_synthetic_scannet_ships_the_lists_and_the_generator_rewrites_them(rooms, tmp_path):
    train = ScanNet(rooms, "train")
    names = [path.name for path in train.scene_paths]
    for percent in (1, 5, 10, 20):  # at least two scenes: one batch of the recipes
        assert 2 <= len(set(read_scene_list(scene_list_path(rooms / "tasks", percent)))) and \
            set(read_scene_list(scene_list_path(rooms / "tasks", percent))) <= set(names)
    for count in (20, 50, 100, 200):
        points = read_labelled_points(labelled_points_path(rooms / "tasks", count))
        assert sorted(points) == names
        for index, name in enumerate(names):
            segment = train.load(index).segment
            assert len(points[name]) == min(count, int((segment >= 0).sum())) and (segment[points[name]] >= 0).all()
    files = write_data_efficient_lists(train, tmp_path, seed=3, percentages=(50,), counts=(20,))
    assert files == [tmp_path / "scenes" / "50.txt", tmp_path / "points" / "points20"]
    again = read_labelled_points(tmp_path / "points" / "points20")
    shipped = read_labelled_points(rooms / "tasks" / "points" / "points20")
    assert all(np.array_equal(again[name], shipped[name]) for name in names)  # same seed, same draw


def test_dataset_restricts_scenes_and_marks_labelled_points(rooms):
    names = [path.name for path in ScanNet(rooms, "train").scene_paths]
    limited = ScanNet(rooms, "train", scenes=[names[1]])
    assert [path.name for path in limited.scene_paths] == [names[1]]
    with pytest.raises(FileNotFoundError, match="scene 'scene9999_00' of the scene list is not in split 'train'"):
        ScanNet(rooms, "train", scenes=["scene9999_00"])
    points = {name: np.array([0, 5, 9]) for name in names}
    sample = ScanNet(rooms, "train", labelled_points=points)[0]
    assert sample.labelled.nonzero()[:, 0].tolist() == [0, 5, 9]
    assert torch.equal(sample.labelled_segment[[0, 5, 9]], sample.segment[[0, 5, 9]])
    assert (sample.labelled_segment[~sample.labelled] == -1).all() and (sample.segment[~sample.labelled] >= 0).any()
    with pytest.raises(ValueError, match=f"labelled_points has no entry for scene '{names[0]}'"):
        ScanNet(rooms, "train", labelled_points={names[1]: np.array([0])})
    with pytest.raises(ValueError, match="labelled point index 10000000 .* out of range"):
        ScanNet(rooms, "train", labelled_points={name: np.array([10_000_000]) for name in names})[0]


def test_grid_sampling_and_dropout_keep_the_labelled_points(rooms):
    scene = ScanNet(rooms, "train")[0]
    labelled_rows = torch.randperm(scene.num_points, generator=torch.Generator().manual_seed(0))[:200]
    labelled = torch.zeros(scene.num_points, dtype=torch.bool)
    labelled[labelled_rows] = True
    scene = scene.replace(labelled=labelled, instance=torch.arange(scene.num_points))  # instance: the row, to trace
    reference = T.GridSample(grid_size=0.1, return_inverse=True)(scene.replace(labelled=None), torch.Generator())
    voxels_with_labels = {tuple(v) for v in reference.grid_coord[reference.inverse[labelled_rows]].tolist()}
    sampled = T.GridSample(grid_size=0.1)(scene, torch.Generator().manual_seed(1))
    assert sampled.num_points == reference.num_points  # still one point per voxel: no duplicate sites
    kept_voxels = {tuple(v) for v in sampled.grid_coord[sampled.labelled].tolist()}
    # every voxel holding labelled points keeps one of them
    assert kept_voxels == voxels_with_labels and len(kept_voxels) == int(sampled.labelled.sum())
    assert set(sampled.instance[sampled.labelled].tolist()) <= set(labelled_rows.tolist())
    dropped = T.RandomDropout(dropout_ratio=0.9, application_ratio=1.0)(scene, torch.Generator().manual_seed(2))
    assert dropped.num_points < scene.num_points / 5 and set(labelled_rows.tolist()) <= set(dropped.instance.tolist())
    assert torch.equal(dropped.instance, dropped.instance.sort().values)  # original order kept


def test_collate_carries_the_mask(rooms):
    chain = T.Compose([T.GridSample(grid_size=0.1), T.NormalizeColor()])
    dataset = ScanNet(rooms, "train", chain, labelled_points={p.name: np.array([1, 2]) for p in
                                                              ScanNet(rooms, "train").scene_paths})
    plain = ScanNet(rooms, "train", chain)
    batch = collate_scenes([dataset[0], plain[1]])
    first = batch.offset[0]
    assert batch.labelled.dtype == torch.bool and batch.labelled[first:].all()  # a scene without a mask: all labelled
    assert int(batch.labelled[:first].sum()) == 2 and (batch.labelled_segment[:first] >= 0).sum() <= 2
    assert collate_scenes([plain[0]]).labelled is None
