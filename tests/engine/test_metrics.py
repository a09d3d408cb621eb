import contextlib
import json
import math

import pytest
import torch
from torch import nn

from ppt.engine import ConfusionMatrix, RecipeConfig, Task
from ppt.engine.metrics import Totals, strict_json


def test_hand_made_confusion_case():
    # classes 0, 1, 2 (2 never occurs in the targets), 3 is predicted but absent; -1 ignored
    target = torch.tensor([0, 0, 0, 1, 1, -1, -1, 3])
    prediction = torch.tensor([0, 0, 1, 1, 2, 0, 3, 3])
    confusion = ConfusionMatrix(4)
    confusion.update(prediction, target)
    assert confusion.matrix.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    iou, accuracy = confusion.per_class()
    # class 0: tp 2, fn 1, fp 0 -> 2/3; class 1: tp 1, fn 1, fp 1 -> 1/3; class 3: 1/1
    assert iou[0] == pytest.approx(2 / 3) and iou[1] == pytest.approx(1 / 3) and iou[3] == 1
    assert math.isnan(iou[2]) and math.isnan(accuracy[2])
    assert accuracy.tolist()[:2] == pytest.approx([2 / 3, 1 / 2])
    summary = confusion.summary(["a", "b", "c", "d"])
    assert summary["mIoU"] == pytest.approx((2 / 3 + 1 / 3 + 1) / 3)
    assert summary["mAcc"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert summary["allAcc"] == pytest.approx(4 / 6)
    assert summary["count"] == 6
    assert "IoU/c" not in summary and summary["IoU/d"] == 1


def test_strict_json_writes_null_for_non_finite_numbers():
    def refuse(constant):
        raise ValueError(f"bare {constant} in the JSON")

    empty = ConfusionMatrix(3).summary(["a", "b", "c"])  # nothing labelled: NaN means
    record = {"step": 4, "loss": float("inf"), "eval": {"scannet": empty, "s3dis": {"mIoU": 0.5}}, "v": [1.0, -math.inf]}
    text = strict_json(record)
    parsed = json.loads(text, parse_constant=refuse)
    assert parsed == {"step": 4, "loss": None, "eval": {"scannet": {"mIoU": None, "mAcc": None, "allAcc": None,
                                                                    "count": 0}, "s3dis": {"mIoU": 0.5}},
                      "v": [1.0, None]}


def test_updates_accumulate_and_check_labels():
    confusion = ConfusionMatrix(2)
    confusion.update(torch.tensor([1]), torch.tensor([1]))
    confusion.update(torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert confusion.matrix.tolist() == [[0, 0], [1, 2]]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        confusion.update(torch.tensor([2]), torch.tensor([0]))
    with pytest.raises(ValueError, match="differ in shape"):
        confusion.update(torch.tensor([0, 1]), torch.tensor([0]))


def test_totals_add_numbers_and_tensors_and_check_their_count():
    totals = Totals(3)
    totals.add(torch.tensor(1.5), 2, torch.tensor([4.0]))
    totals.add(0.5, 1, 0)
    assert totals.tolist() == [2.0, 3.0, 4.0] and totals.values.dtype == torch.float64
    totals.all_reduce()  # one process: unchanged
    assert totals.tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="expected 3 values, got 2"):
        totals.add(1, 2)
    with pytest.raises(ValueError, match="size must be >= 1"):
        Totals(0)


class _ItemSumTask(Task):
    """Evaluation that adds up the dataset items it sees (and checks the mode it runs in)."""

    def dataset_class(self, source):
        raise NotImplementedError

    def dataset(self, source, split, *, train, is_main=True):
        raise NotImplementedError

    def collate(self, samples):
        return torch.tensor(samples, dtype=torch.float64)

    def build_model(self):
        return nn.Linear(1, 1)

    def loss(self, model, batch):
        raise NotImplementedError

    def evaluate_batch(self, model, batch, totals):
        assert not model.training and not torch.is_grad_enabled()
        totals.add(batch.sum(), batch.numel())


def test_accumulate_shards_splits_each_source_between_processes_and_restores_the_mode():
    config = RecipeConfig()
    config.data.val_batch_size = 2
    task, model = _ItemSumTask(config), nn.Linear(1, 1)
    datasets = {"a": [float(i) for i in range(7)], "b": [10.0]}
    seen = []
    for rank in range(2):
        sums = task.accumulate_shards(model, datasets, lambda _: Totals(2), task.evaluate_batch,
                                      device=torch.device("cpu"), autocast=contextlib.nullcontext, rank=rank,
                                      world_size=2, progress=None)
        seen.append({name: totals.tolist() for name, totals in sums.items()})
        assert model.training
    assert seen[0] == {"a": [0 + 2 + 4 + 6, 4], "b": [10, 1]}
    assert seen[1] == {"a": [1 + 3 + 5, 3], "b": [0, 0]}
