"""The part-segmentation task end to end on tiny synthetic ShapeNetPart: both recipes train two steps
through the real ``ppt`` command, ``ppt eval`` and ``ppt predict`` on the checkpoint, the
checkpoint round trip, and the task's contract for models that read normals."""

import json
import re

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement
from torch import nn

from ppt.data import SHAPENETPART_PARTS, PartBatch
from ppt.engine import load_recipe, train
from ppt.engine.config import ConfigError
from ppt.engine.inference import evaluate_checkpoint, load_checkpoint
from ppt.engine.tasks import create_task
from ppt.engine.tasks.part_segmentation import takes_normals
from tests.engine.conftest import set_options

TINY_PARTS = [
    "data.synthetic.train_per_class=1", "data.synthetic.test_per_class=1", "data.synthetic.object_points=64",
    "data.num_points=64", "data.batch_size=4", "data.val_batch_size=16", "model.dim=24", "model.heads=2",
    "model.num_groups=8", "model.group_size=8", "model.rank=4", "train.tensorboard=false", "train.eval_every=0",
    "train.checkpoint_every=0", "train.amp=none", "train.steps=2",
]


@pytest.fixture
def part_overrides(cache_dir):
    return [f"data.cache_dir={cache_dir}", *TINY_PARTS]


def _synthetic_root(cache_dir):
    return cache_dir / "synthetic" / "shapenetpart-seed0-1x1-64pts"


@pytest.mark.slow
def test_pointmae_partseg_trains_evaluates_and_predicts_through_the_cli(tmp_path, part_overrides, cache_dir,
                                                                       ppt_command):
    out = tmp_path / "run"
    run = ppt_command("train", "pointmae-partseg", "--out", out, "--no-progress", *set_options(part_overrides))
    assert run.returncode == 0, run.stderr
    assert "done: step 2 of 2" in run.stdout and "part-segmentation on shapenetpart" in run.stdout
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evaluation = log[-1]["eval"]["shapenetpart"]
    assert evaluation["count"] == 16 and 0 <= evaluation["instance_mIoU"] <= 1 and "IoU/Chair" in evaluation
    checkpoint = out / "last.safetensors"

    evaluated = ppt_command("eval", checkpoint, "--no-progress")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "shapenetpart (test split)" in evaluated.stdout and "instance mIoU" in evaluated.stdout
    assert "Motorbike" in evaluated.stdout and "(16 shapes;" in evaluated.stdout

    chair = next((_synthetic_root(cache_dir) / "03001627").glob("*.txt"))
    rows = np.loadtxt(chair)
    vertex = np.empty(len(rows), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("label", "i4")])
    for i, axis in enumerate("xyz"):
        vertex[axis] = rows[:, i]
    vertex["label"] = rows[:, 6].astype(np.int32)
    ply = tmp_path / "chair.ply"
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(ply))
    predictions = tmp_path / "pred"
    predicted = ppt_command("predict", checkpoint, chair, ply, "--category", "chair", "--out", predictions)
    assert predicted.returncode == 0, predicted.stderr
    assert "points as Chair parts, IoU against its labels" in predicted.stdout
    for stem in (chair.stem, "chair"):
        labels = np.load(predictions / f"{stem}.labels.npy")
        assert labels.shape == (len(rows),) and set(labels.tolist()) <= set(SHAPENETPART_PARTS["Chair"])
        written = PlyData.read(str(predictions / f"{stem}.ply"))
        np.testing.assert_array_equal(np.asarray(written["vertex"]["prediction"]), labels)
        assert (predictions / f"{stem}.png").stat().st_size > 1000
    # a .ply says nothing of its category: without --category the command stops with one line
    missing = ppt_command("predict", checkpoint, ply, "--out", predictions)
    assert missing.returncode == 2 and "give --category" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_dapt_partseg_trains_two_steps_through_the_cli(tmp_path, part_overrides, ppt_command):
    run = ppt_command("train", "dapt-partseg", "--out", tmp_path / "run", "--no-progress",
                      *set_options(part_overrides))
    assert run.returncode == 0, run.stderr
    assert "done: step 2 of 2" in run.stdout
    counts = re.search(r"point-mae-partseg with ([\d,]+) trainable of ([\d,]+) parameters", run.stdout)
    trainable, total = (int(count.replace(",", "")) for count in counts.groups())
    assert 0 < trainable < total


def test_checkpoint_round_trip(tmp_path, part_overrides):
    result = train(load_recipe("pointmae-partseg", part_overrides), tmp_path / "run", recipe="pointmae-partseg",
                   progress=False)
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))
    metrics = result.metrics["shapenetpart"]
    assert metrics["count"] == 16 and 0 <= metrics["class_mIoU"] <= 1
    loaded = load_checkpoint(tmp_path / "run" / "last.safetensors", device="cpu")
    again = evaluate_checkpoint(loaded, progress=False)["shapenetpart"].summary()
    assert again["instance_mIoU"] == pytest.approx(metrics["instance_mIoU"])
    assert again["class_mIoU"] == pytest.approx(metrics["class_mIoU"])


def test_recipes_and_bad_sources():
    for recipe, peft in (("pointmae-partseg", "full"), ("dapt-partseg", "dapt")):
        config = load_recipe(recipe)
        assert (config.task, config.model.name, config.model.peft) == ("part-segmentation", "point-mae-partseg", peft)
        assert config.data.num_points == 2048 and config.train.best_metric == "instance_mIoU"
    config = load_recipe("pointmae-partseg", ["data.sources.shapenetpart.dataset=modelnet40"])
    with pytest.raises(ValueError, match="task 'part-segmentation' reads dataset 'shapenetpart', got 'modelnet40'"):
        create_task(config)
    with pytest.raises(ConfigError, match="train.best_metric must be one of"):
        load_recipe("pointmae-partseg", ["train.best_metric=ins_mIoU"])


class _NormalsModel(nn.Module):
    """A model of the other family's signature: forward(xyz, normals, cls_label)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 50)
        self.seen = None

    def forward(self, xyz, normals, cls_label):
        self.seen = (xyz, normals, cls_label)
        return self.head(torch.cat([xyz, normals], dim=-1))


class _Wrapper(nn.Module):
    """Like DistributedDataParallel: the model under ``.module``, ``forward(*inputs)``."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *inputs):
        return self.module(*inputs)


def test_task_passes_normals_to_models_that_read_them(part_overrides):
    task = create_task(load_recipe("pointmae-partseg", part_overrides))
    model = _NormalsModel()
    assert takes_normals(model) and takes_normals(_Wrapper(model))  # seen through a DDP-like wrapper
    assert not takes_normals(_Wrapper(nn.Identity()))
    task.model_takes_normals = True
    batch = PartBatch(torch.randn(2, 8, 3), torch.randn(2, 8, 3), torch.tensor([0, 1]),
                      torch.zeros(2, 8, dtype=torch.int64))
    loss = task.loss(model, batch)
    assert loss.ndim == 0 and model.seen[1] is batch.normals and model.seen[2] is batch.categories
