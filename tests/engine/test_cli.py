"""ppt train / eval / predict end to end on a tiny run."""

import re

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from ppt.cli import main
from tests.engine.conftest import TINY_SCENE


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
    assert f"{scene}: {len(coord)} points as ScanNet, mIoU" in printed
    for name in (scene.name, "cloud"):
        labels_out = np.load(predictions / f"{name}.labels.npy")
        assert labels_out.shape == (len(coord),) and labels_out.min() >= 0 and labels_out.max() < 20
        written = PlyData.read(str(predictions / f"{name}.ply"))
        vertices = written["vertex"]
        assert len(vertices["x"]) == len(coord) and np.array_equal(vertices["prediction"], labels_out)
        assert "label" not in vertices.data.dtype.names  # a prediction is not ground truth
        assert written.comments[0].startswith(f"ppt predict: last.safetensors (spunet-scannet, step 2), ScanNet classes")
        assert (predictions / f"{name}.png").stat().st_size > 1000


def test_predict_refuses_its_own_output(tmp_path, scannet_copy, ppt_command):
    """ppt predict's PLY holds class colours and predictions: fed back in, they are not taken for a
    scan's colours and ground truth. Files of older ppt versions (a label property, no comment) are
    recognised by their colours."""
    from ppt.engine.inference import palette

    run = ppt_command("train", "spunet-scannet", "--out", tmp_path / "run", "--no-progress", *_tiny(scannet_copy))
    assert run.returncode == 0, run.stderr
    checkpoint = tmp_path / "run" / "last.safetensors"
    (scene,) = (scannet_copy / "val").iterdir()
    assert ppt_command("predict", checkpoint, scene, "--out", tmp_path / "first").returncode == 0
    output = tmp_path / "first" / f"{scene.name}.ply"
    legacy = tmp_path / "legacy.ply"
    vertices = PlyData.read(str(output))["vertex"].data
    old = np.empty(len(vertices), dtype=[(name, vertices.dtype[name]) for name in ("x", "y", "z", "red", "green", "blue")]
                   + [("label", "i4")])
    for name in ("x", "y", "z", "red", "green", "blue"):
        old[name] = vertices[name]
    old["label"] = vertices["prediction"]
    PlyData([PlyElement.describe(old, "vertex")]).write(str(legacy))
    assert np.array_equal(np.stack([old[c] for c in ("red", "green", "blue")], 1), palette(20)[old["label"]])
    for cloud in (output, legacy):
        again = ppt_command("predict", checkpoint, cloud, "--out", tmp_path / "second")
        assert again.returncode == 2 and again.stdout == ""
        assert again.stderr == (f"ppt predict: {cloud} is an output of ppt predict: its colours are class colours and "
                                "its classes predictions, not a scan's colours and labels; predict the original scene "
                                "instead\n")


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    assert _run(["eval", str(broken)]) == 2
    assert "ppt eval: " in (err := capsys.readouterr().err) and "broken.safetensors: not a readable safetensors file" in err
    assert _run(["predict", str(tmp_path / "missing.safetensors"), "scene", "--out", str(tmp_path)]) == 2
    assert "missing.safetensors does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def scannet_copy(tmp_path_factory):
    """A small synthetic ScanNet (4 train, 1 val, 1 test scenes) of its own, to break."""
    from ppt.data.scenes.rooms import write_synthetic_rooms

    root = tmp_path_factory.mktemp("scannet") / "scannet"
    write_synthetic_rooms(root, "scannet", 6, seed=0, density=0.05)
    return root


def _tiny(root, *extra):
    sets = [f"data.root={root}", *TINY_SCENE, "train.steps=2", *extra]
    return [arg for value in sets for arg in ("--set", value)]


def test_missing_labels_stop_training_naming_the_file(tmp_path, scannet_copy, ppt_command):
    import shutil

    root = tmp_path / "scannet"
    shutil.copytree(scannet_copy, root)
    scene = sorted((root / "train").iterdir())[1]
    (scene / "segment20.npy").unlink()
    run = ppt_command("train", "spunet-scannet", "--out", tmp_path / "run", "--no-progress", *_tiny(root))
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"ppt train: ScanNet: {scene / 'segment20.npy'}: missing; this scene has none of the "
                                 "label files segment20.npy, segment.npy")
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_log_is_strict_json_when_a_metric_is_undefined(tmp_path, scannet_copy, ppt_command):
    import json
    import shutil

    root = tmp_path / "scannet"
    shutil.copytree(scannet_copy, root)
    (val_scene,) = (root / "val").iterdir()
    labels = np.load(val_scene / "segment20.npy")
    np.save(val_scene / "segment20.npy", np.full_like(labels, -1))  # a val split without labelled points: mIoU NaN
    run = ppt_command("train", "spunet-scannet", "--out", tmp_path / "run", "--no-progress", *_tiny(root))
    assert run.returncode == 0, run.stderr

    def refuse(constant):
        raise ValueError(f"log.jsonl holds a bare {constant}")

    records = [json.loads(line, parse_constant=refuse) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    metrics = records[-1]["eval"]["scannet"]
    assert metrics["mIoU"] is None and metrics["allAcc"] is None and metrics["count"] == 0
    assert ppt_command("plot-log", tmp_path / "run").returncode == 0  # nulls are skipped in the plot


def test_log_time_continues_after_resume(tmp_path, scannet_copy, ppt_command):
    import json

    from ppt.engine import read_train_state

    out = tmp_path / "run"
    first = ppt_command("train", "spunet-scannet", "--out", out, "--no-progress", "--stop-after", "3",
                        *_tiny(scannet_copy, "train.steps=5"))
    assert first.returncode == 0, first.stderr
    elapsed = read_train_state(out / "last.safetensors")["elapsed"]
    second = ppt_command("train", "spunet-scannet", "--out", out, "--no-progress", "--resume",
                         *_tiny(scannet_copy, "train.steps=5"))
    assert second.returncode == 0, second.stderr
    times = {record["step"]: record["time"] for record in map(json.loads, (out / "log.jsonl").read_text().splitlines())
             if "loss" in record}
    assert sorted(times) == [1, 2, 3, 4, 5]
    # seconds of training, summed over sessions (the log rounds to milliseconds: compare rounded)
    assert times[1] <= times[2] <= times[3] <= round(elapsed, 3) <= times[4] <= times[5]


def test_eval_of_a_pretraining_checkpoint_prints_its_chamfer_distance(tmp_path, object_overrides, ppt_command):
    from ppt.engine import load_recipe, train

    config = load_recipe("pointmae-pretrain", [*object_overrides, "model.num_groups=8", "model.decoder_depth=1",
                                               "train.steps=1"])
    train(config, tmp_path / "pre", recipe="pointmae-pretrain", progress=False)
    runs = [ppt_command("eval", tmp_path / "pre" / "last.safetensors", "--no-progress") for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    source, metrics = runs[0].stdout.splitlines()[-2:]
    assert source == "shapenet55 (test split)"
    assert re.fullmatch(r"chamfer \d+\.\d{4}   \(\d+ samples\)", metrics), metrics
    assert runs[1].stdout == runs[0].stdout  # the masks are drawn with a fixed seed


@pytest.mark.parametrize("command", [["train", "--list"], ["info"], ["bench", "models", "--help"]])
def test_closed_output_pipe_ends_quietly(command):
    """``ppt train --list | head -1``: the reader is gone before ppt writes; no BrokenPipeError traceback."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "ppt", *command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader goes away at once
    error = process.stderr.read()
    assert process.wait(timeout=120) == 141 and error == ""  # 128 + SIGPIPE, as a shell reports it


def test_bench_suite_help_describes_the_suite(ppt_command):
    run = ppt_command("bench", "models", "--help")
    assert run.returncode == 0 and run.stdout.startswith("usage: ppt bench")
    description = run.stdout.split("\nsuite models:\n", 1)[1]
    assert "Model-step benchmarks" in description and "ppt step" in description and "unipre3d scene step" in description
    assert ":class:" not in description and "``" not in description
    assert "suite models:" not in ppt_command("bench", "--help").stdout
