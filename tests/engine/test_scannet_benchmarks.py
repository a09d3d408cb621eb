"""ScanNet200 and the ScanNet data-efficient benchmark in the engine: the head / common / tail mIoU
on hand-made confusion matrices, the labelled-point mask through the loss and the metrics, and
2-step runs of the recipes through the ``ppt`` command."""

import contextlib
import dataclasses
import json

import numpy as np
import pytest
import torch

from ppt.cli import main
from ppt.data import ScanNet, collate_scenes
from ppt.data.scenes.data_efficient import read_labelled_points, read_scene_list
from ppt.data.scenes.rooms import write_synthetic_rooms
from ppt.engine import create_task, load_recipe
from ppt.engine.inference import format_table
from ppt.engine.metrics import ConfusionMatrix
from ppt.engine.tasks.segmentation import scene_val_transform
from tests.engine.conftest import set_options

GROUPS = {"head": ("a", "b"), "common": ("c",), "tail": ("d", "e")}


def test_group_miou_on_hand_made_cases():
    confusion = ConfusionMatrix(5)
    # a: 2 points, one right; b: 1 right; c: 2 right, 1 predicted as d; d: 1 right; e: absent
    confusion.update(torch.tensor([0, 1, 1, 2, 2, 3, 3]), torch.tensor([0, 0, 1, 2, 2, 2, 3]))
    summary = confusion.summary(list("abcde"), GROUPS)
    iou = {"a": 1 / 2, "b": 1 / 2, "c": 2 / 3, "d": 1 / 2}  # hits / (targets + predicted - hits)
    assert summary["mIoU/head"] == pytest.approx((iou["a"] + iou["b"]) / 2)
    assert summary["mIoU/common"] == pytest.approx(iou["c"])
    assert summary["mIoU/tail"] == pytest.approx(iou["d"])  # e never occurs: left out, as in the overall mean
    assert summary["mIoU"] == pytest.approx(sum(iou.values()) / 4)
    only_e_missing = ConfusionMatrix(5)
    only_e_missing.update(torch.tensor([0]), torch.tensor([0]))
    assert np.isnan(only_e_missing.summary(list("abcde"), GROUPS)["mIoU/tail"])  # no class of the group present
    with pytest.raises(ValueError, match=r"group 'tail' names classes \['z'\]"):
        confusion.summary(list("abcde"), {"tail": ("d", "z")})
    table = format_table(confusion, list("abcde"), True, GROUPS)
    assert table.splitlines()[-1] == (f"mIoU/head {summary['mIoU/head']:.4f}   mIoU/common {summary['mIoU/common']:.4f}"
                                      f"   mIoU/tail {summary['mIoU/tail']:.4f}")


@pytest.fixture
def efficient_task(scene_overrides):
    config = load_recipe("spunet-scannet-efficient", [*scene_overrides, "data.sources.scannet.limited=la20"])
    return create_task(config)


def test_unlabelled_points_contribute_nothing_to_the_loss(efficient_task):
    task = efficient_task
    dataset = task.dataset(task.config.data.sources["scannet"], "train", train=True)
    assert dataset.labelled_points is not None
    batch = collate_scenes([dataset[0], dataset[1]], feat_keys=("color", "normal"))
    assert 0 < int(batch.labelled.sum()) <= 40
    torch.manual_seed(0)
    model = task.build_model()

    def loss_and_grads(segment):
        model.zero_grad()
        loss = task.loss(model, dataclasses.replace(batch, segment=segment))
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss, grads = loss_and_grads(batch.segment)
    scrambled = torch.where(batch.labelled, batch.segment, (batch.segment + 7) % 20)  # other labels off the list
    other_loss, other_grads = loss_and_grads(scrambled)
    assert torch.equal(loss, other_loss) and all(torch.equal(a, b) for a, b in zip(grads, other_grads))
    with torch.no_grad():
        logits = model(batch.sparse_tensor())
    target = batch.segment[batch.labelled]
    keep = target >= 0
    expected = torch.nn.functional.cross_entropy(logits[batch.labelled][keep], target[keep])
    assert loss == pytest.approx(float(expected), rel=1e-5)  # the mean over the labelled points alone


def test_metrics_count_only_the_labelled_points(efficient_task):
    task = efficient_task
    source = task.config.data.sources["scannet"]
    training = task.dataset(source, "train", train=True)
    scenes = training.scene_paths[:2]
    points = {path.name: training.labelled_points[path.name] for path in scenes}
    limited = ScanNet(training.root, "train", scene_val_transform(0.1), scenes=[p.name for p in scenes],
                      labelled_points=points)
    full = ScanNet(training.root, "train", scene_val_transform(0.1), scenes=[p.name for p in scenes])
    model = task.build_model()
    limited_metrics, full_metrics = (task.evaluate(model, {"scannet": dataset}, device=torch.device("cpu"),
                                                   autocast=contextlib.nullcontext)["scannet"]
                                     for dataset in (limited, full))
    labelled = sum(int((limited.load(i).segment[torch.from_numpy(points[p.name])] >= 0).sum())
                   for i, p in enumerate(scenes))
    assert limited_metrics["count"] == labelled
    assert full_metrics["count"] == sum(int((full.load(i).segment >= 0).sum()) for i in range(2)) > labelled


def _train(ppt_command, recipe, out, sets):
    run = ppt_command("train", recipe, "--out", out, "--no-progress", *set_options([*sets, "train.steps=2"]))
    assert run.returncode == 0, run.stderr
    assert "done: step 2 of 2" in run.stdout
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow  # a subprocess writes the synthetic rooms, trains and evaluates: ~35 s on a loaded 2-core machine
def test_scannet200_recipe_trains_and_reports_head_common_tail(tmp_path, scene_overrides, ppt_command):
    records = _train(ppt_command, "spunet-scannet200", tmp_path / "run", scene_overrides)
    evaluation = records[-1]["eval"]["scannet200"]
    assert {"mIoU", "mIoU/head", "mIoU/common", "mIoU/tail"} <= set(evaluation)
    run = ppt_command("eval", tmp_path / "run" / "last.safetensors", "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "scannet200 (val split)" in run.stdout and "mIoU/head" in run.stdout and "mIoU/tail" in run.stdout
    assert "couch" in run.stdout and "mattress" in run.stdout


@pytest.mark.slow  # ~20 s each on a loaded 2-core machine
@pytest.mark.parametrize("setting", ["lr1", "la20"])
def test_efficient_recipe_trains_on_each_kind_of_setting(setting, tmp_path, scene_overrides, ppt_command):
    records = _train(ppt_command, "spunet-scannet-efficient", tmp_path / "run",
                     [*scene_overrides, f"data.sources.scannet.limited={setting}"])
    assert "mIoU" in records[-1]["eval"]["scannet"]
    printed = (tmp_path / "run" / "config.yaml").read_text()
    assert f"limited: {setting}" in printed


def test_efficient_recipe_errors_are_one_line(tmp_path, scene_overrides, run_ppt, capsys):
    sets = [*scene_overrides, "train.steps=2"]
    assert run_ppt(["train", "spunet-scannet-efficient", "--out", str(tmp_path / "a"), "--no-progress"],
                   [*sets, "data.sources.scannet.limited=la7"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "points7 does not exist; settings in" in error
    assert error.endswith(": lr1, lr5, lr10, lr20, la20, la50, la100, la200")
    assert run_ppt(["train", "spunet-scannet-efficient", "--out", str(tmp_path / "b"), "--no-progress"],
                   [*sets, "data.sources.scannet.limited=half"]) == 2
    assert "data.sources.scannet.limited must be lr<percent>" in capsys.readouterr().err


@pytest.mark.slow
def test_finetune_from_ppt_on_limited_annotations(tmp_path, scene_overrides, ppt_command):
    tiny_ppt = [*scene_overrides, "model.ppt.context_channels=8"]
    _train(ppt_command, "ppt-joint", tmp_path / "joint", tiny_ppt)
    weights = tmp_path / "joint" / "last.safetensors"
    records = _train(ppt_command, "ppt-finetune-scannet-efficient", tmp_path / "finetune",
                     [*tiny_ppt, f"model.weights={weights}", "data.sources.scannet.limited=la50"])
    assert set(records[-1]["eval"]) == {"scannet"}


def test_data_efficient_command_writes_the_lists(tmp_path, ppt_command, capsys):
    root = tmp_path / "rooms"
    write_synthetic_rooms(root, "scannet", 4, density=0.05)
    run = ppt_command("data", "data-efficient", "--root", root, "--out", tmp_path / "tasks", "--seed", "9",
                      "--percentages", "50", "--points", "10", "30")
    assert run.returncode == 0, run.stderr
    assert "wrote 3 data-efficient lists over the 3 train scenes" in run.stdout
    assert len(read_scene_list(tmp_path / "tasks" / "scenes" / "50.txt")) == 2
    ten, thirty = (read_labelled_points(tmp_path / "tasks" / "points" / f"points{k}") for k in (10, 30))
    assert len(ten) == 3 and all(set(ten[name]) <= set(thirty[name]) and len(ten[name]) == 10 for name in ten)
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "data-efficient", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.startswith("ppt data data-efficient: ScanNet: dataset root")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "data-efficient", "--root", str(root), "--out", str(tmp_path / "x"), "--dataset", "kitti"])
    assert exit_info.value.code == 2 and "--dataset must be one of" in capsys.readouterr().err
