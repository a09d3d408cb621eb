"""ppt train / eval / predict end to end on a tiny run."""

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from ppt.cli import main


def _run(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def _sets(overrides):
    return [arg for override in overrides for arg in ("--set", override)]


def test_train_list_and_bad_config(capsys):
    assert _run(["train", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "spunet-scannet" in listing and "dapt-scanobjectnn" in listing
    assert _run(["train", "spunet-scannet", "--set", "train.stepz=1"]) == 2
    assert "valid keys of train: steps" in capsys.readouterr().err
    assert _run(["train", "no-such-recipe"]) == 2
    assert "shipped recipes" in capsys.readouterr().err


def test_train_eval_predict(tmp_path, scene_overrides, capsys):
    out = tmp_path / "run"
    assert _run(["train", "spunet-scannet", "--out", str(out), "--no-progress", *_sets(scene_overrides),
                 "--set", "train.steps=2"]) == 0
    printed = capsys.readouterr().out
    assert f"outputs: {out}/" in printed and "done: step 2 of 2" in printed
    checkpoint = out / "last.safetensors"

    assert _run(["eval", str(checkpoint), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "spunet-scannet at step 2" in table and "scannet (val split)" in table
    assert "otherfurniture" in table and "mIoU" in table and "allAcc" in table

    cache = next(tmp_path.parent.glob("**/synthetic/scannet-seed0-6scenes-density0.05"))
    scene = next((cache / "val").iterdir())
    coord, color = np.load(scene / "coord.npy"), np.load(scene / "color.npy")
    labels = np.load(scene / "segment20.npy").astype(np.int32)
    vertex = np.empty(len(coord), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                         ("blue", "u1"), ("label", "i4")])
    for i, axis in enumerate("xyz"):
        vertex[axis] = coord[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertex[channel] = color[:, i]
    vertex["label"] = labels
    ply = tmp_path / "cloud.ply"
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(ply))

    predictions = tmp_path / "pred"
    assert _run(["predict", str(checkpoint), str(scene), str(ply), "--out", str(predictions)]) == 0
    printed = capsys.readouterr().out
    assert "mIoU against its labels" in printed and "no normals: estimated by PCA" in printed  # the PLY has none
    for name in (scene.name, "cloud"):
        labels_out = np.load(predictions / f"{name}.labels.npy")
        assert labels_out.shape == (len(coord),) and labels_out.min() >= 0 and labels_out.max() < 20
        written = PlyData.read(str(predictions / f"{name}.ply"))["vertex"]
        assert len(written["x"]) == len(coord) and np.array_equal(written["label"], labels_out)
        assert (predictions / f"{name}.png").stat().st_size > 1000


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    assert _run(["eval", str(broken)]) == 2
    assert "ppt eval: " in (err := capsys.readouterr().err) and "broken.safetensors: not a readable safetensors file" in err
    assert _run(["predict", str(tmp_path / "missing.safetensors"), "scene", "--out", str(tmp_path)]) == 2
    assert "missing.safetensors does not exist" in capsys.readouterr().err
