import math

import pytest
import torch

from ppt.engine import ConfusionMatrix


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


def test_updates_accumulate_and_check_labels():
    confusion = ConfusionMatrix(2)
    confusion.update(torch.tensor([1]), torch.tensor([1]))
    confusion.update(torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert confusion.matrix.tolist() == [[0, 0], [1, 2]]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        confusion.update(torch.tensor([2]), torch.tensor([0]))
    with pytest.raises(ValueError, match="differ in shape"):
        confusion.update(torch.tensor([0, 1]), torch.tensor([0]))
