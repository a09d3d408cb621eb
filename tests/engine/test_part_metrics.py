"""PartIoU: ShapeNetPart's instance and class mIoU as the official evaluation computes them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ppt.data import SHAPENETPART_CATEGORIES, SHAPENETPART_PARTS, category_part_mask
from ppt.engine.metrics import PartIoU


def _metric():
    return PartIoU(category_part_mask(), SHAPENETPART_CATEGORIES)


def _scores(prediction):
    return F.one_hot(torch.as_tensor(prediction), 50).float()


def test_hand_made_shapes():
    bag, mug = SHAPENETPART_CATEGORIES.index("Bag"), SHAPENETPART_CATEGORIES.index("Mug")
    # a bag (parts 4, 5): target 4 4 5 5, predicted 4 5 5 5 -> IoU(4) = 1/2, IoU(5) = 2/3
    # a mug (parts 36, 37): only part 36 in target and prediction, all right -> IoU(36) = 1, and 37,
    # absent from both, counts 1
    # a second bag, all right -> 1
    target = torch.tensor([[4, 4, 5, 5], [36, 36, 36, 36], [4, 5, 4, 5]])
    prediction = torch.tensor([[4, 5, 5, 5], [36, 36, 36, 36], [4, 5, 4, 5]])
    metric = _metric()
    metric.update(_scores(prediction), target, torch.tensor([bag, mug, bag]))
    shape_bag = (1 / 2 + 2 / 3) / 2
    summary = metric.summary()
    assert summary["instance_mIoU"] == pytest.approx((shape_bag + 1 + 1) / 3)
    assert summary["class_mIoU"] == pytest.approx(((shape_bag + 1) / 2 + 1) / 2)  # Bag, Mug present only
    assert summary["IoU/Bag"] == pytest.approx((shape_bag + 1) / 2) and summary["IoU/Mug"] == 1
    assert "IoU/Chair" not in summary and summary["count"] == 3
    assert summary["allAcc"] == pytest.approx(11 / 12)


def test_a_part_predicted_but_absent_from_the_truth_scores_zero():
    mug = SHAPENETPART_CATEGORIES.index("Mug")
    metric = _metric()
    metric.update(_scores([[36, 36, 37, 36]]), torch.tensor([[36, 36, 36, 36]]), torch.tensor([mug]))
    assert metric.summary()["instance_mIoU"] == pytest.approx((3 / 4 + 0) / 2)


def test_predictions_are_restricted_to_the_category():
    laptop = SHAPENETPART_CATEGORIES.index("Laptop")  # parts 28, 29
    scores = torch.zeros(1, 3, 50)
    scores[0, :, 12] = 10.0  # a chair part scores highest everywhere ...
    scores[0, 0, 28], scores[0, 1, 29], scores[0, 2, 29] = 1.0, 1.0, 1.0  # ... the laptop's parts next
    metric = _metric()
    assert metric.restrict(scores, torch.tensor([laptop])).tolist() == [[28, 29, 29]]
    metric.update(scores, torch.tensor([[28, 29, 29]]), torch.tensor([laptop]))
    assert metric.summary()["instance_mIoU"] == 1.0


def _official(prediction_logits, target, categories):
    """Point-MAE's segmentation/main.py test loop, line for line in NumPy."""
    seg_classes = {name: list(parts) for name, parts in SHAPENETPART_PARTS.items()}
    seg_label_to_cat = {label: cat for cat, labels in seg_classes.items() for label in labels}
    shape_ious = {cat: [] for cat in seg_classes}
    for i in range(prediction_logits.shape[0]):
        cat = seg_label_to_cat[target[i, 0]]
        logits = prediction_logits[i]
        segp = np.argmax(logits[:, seg_classes[cat]], 1) + seg_classes[cat][0]
        segl = target[i]
        part_ious = [0.0 for _ in range(len(seg_classes[cat]))]
        for l in seg_classes[cat]:
            if (np.sum(segl == l) == 0) and (np.sum(segp == l) == 0):
                part_ious[l - seg_classes[cat][0]] = 1.0
            else:
                part_ious[l - seg_classes[cat][0]] = np.sum((segl == l) & (segp == l)) / float(
                    np.sum((segl == l) | (segp == l)))
        shape_ious[cat].append(np.mean(part_ious))
    all_shape_ious = [iou for ious in shape_ious.values() for iou in ious]
    class_ious = [np.mean(ious) for ious in shape_ious.values() if ious]
    return np.mean(all_shape_ious), np.mean(class_ious)


def test_matches_the_official_loop_on_random_shapes():
    generator = torch.Generator().manual_seed(0)
    categories = torch.randint(0, 16, (40,), generator=generator)
    target = torch.empty(40, 64, dtype=torch.int64)
    for i, category in enumerate(categories.tolist()):
        parts = torch.tensor(SHAPENETPART_PARTS[SHAPENETPART_CATEGORIES[category]])
        # the first point fixes the category for the official loop (it reads target[i, 0]); some shapes lack parts
        used = parts[:max(1, len(parts) - i % 2)]
        target[i] = used[torch.randint(0, len(used), (64,), generator=generator)]
    scores = torch.randn(40, 64, 50, generator=generator)
    # two batches, as an evaluation loop adds them
    metric = _metric()
    metric.update(scores[:25], target[:25], categories[:25])
    metric.update(scores[25:], target[25:], categories[25:])
    instance, klass = _official(scores.numpy(), target.numpy(), categories.numpy())
    summary = metric.summary()
    assert summary["instance_mIoU"] == pytest.approx(instance) and summary["class_mIoU"] == pytest.approx(klass)


def test_bad_shapes_are_named():
    metric = _metric()
    with pytest.raises(ValueError, match=r"expected scores \(B, N, 50\)"):
        metric.update(torch.zeros(1, 4, 49), torch.zeros(1, 4, dtype=torch.int64), torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"categories must lie in \[0, 16\)"):
        metric.update(torch.zeros(1, 4, 50), torch.zeros(1, 4, dtype=torch.int64), torch.tensor([16]))
