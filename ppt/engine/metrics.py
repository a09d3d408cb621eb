"""Metrics from a confusion matrix: mIoU / mAcc / allAcc and per-class IoU for segmentation,
overall and mean-class accuracy for classification. Label ``-1`` is ignored. :class:`Totals`
accumulates the sums behind metrics that are ratios (a mean loss, a mean PSNR). :class:`PartIoU`
computes ShapeNetPart's instance and class mIoU. :func:`strict_json` writes records of metrics as
standard JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["ConfusionMatrix", "Totals", "PartIoU", "strict_json"]


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def strict_json(record) -> str:
    """``record`` as standard JSON, with ``null`` for every non-finite float: a metric with
    nothing to measure is NaN (a source without labelled points), a skipped fp16 step's loss is
    infinite, and Python's ``json`` would write those as the bare ``NaN`` / ``Infinity`` that other
    JSON readers (jq, JavaScript, strict parsers) reject."""
    return json.dumps(_finite_or_none(record), allow_nan=False)


def _sum_over_processes(tensor: Tensor) -> None:
    """Replace ``tensor`` by its sum over every process (a no-op outside ``torch.distributed``)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)


class ConfusionMatrix:
    """``matrix[t, p]`` counts points (or objects) of class ``t`` predicted as ``p``.

    Classes that never occur in the targets have no IoU / accuracy (NaN) and are left out of the
    means, as in Pointcept's evaluator.
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        if num_classes < 1:
            raise ValueError(f"ConfusionMatrix: num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Count ``prediction`` against ``target`` (same shape, int; targets of ``-1`` are skipped)."""
        if prediction.shape != target.shape:
            raise ValueError(f"ConfusionMatrix.update: prediction {tuple(prediction.shape)} and target "
                             f"{tuple(target.shape)} differ in shape")
        keep = target >= 0
        target, prediction = target[keep].long(), prediction[keep].long()
        if target.numel() and (int(target.max()) >= self.num_classes or int(prediction.min()) < 0
                               or int(prediction.max()) >= self.num_classes):
            raise ValueError(f"ConfusionMatrix.update: labels must lie in [0, {self.num_classes})")
        flat = target.to(self.matrix.device) * self.num_classes + prediction.to(self.matrix.device)
        self.matrix += torch.bincount(flat, minlength=self.num_classes ** 2).view(self.num_classes, self.num_classes)

    def all_reduce(self) -> None:
        """Sum the matrices of every process (a no-op outside ``torch.distributed``)."""
        _sum_over_processes(self.matrix)

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def per_class(self) -> tuple[Tensor, Tensor]:
        """Per-class IoU and accuracy (recall), float64, NaN for classes absent from the targets."""
        m = self.matrix.double()
        hits, targets, predicted = m.diagonal(), m.sum(1), m.sum(0)
        present = targets > 0
        nan = torch.full_like(hits, float("nan"))
        iou = torch.where(present, hits / (targets + predicted - hits).clamp(min=1), nan)
        accuracy = torch.where(present, hits / targets.clamp(min=1), nan)
        return iou, accuracy

    def summary(self, class_names: Sequence[str] | None = None,
                groups: Mapping[str, Sequence[str]] | None = None) -> dict[str, float]:
        """``mIoU``, ``mAcc`` (mean class accuracy), ``allAcc`` (overall accuracy), ``count``,
        ``mIoU/<group>`` per entry of ``groups`` (group name -> names of its classes, e.g.
        ScanNet200's head / common / tail: the mean IoU of its classes present in the targets, NaN
        when none is), and ``IoU/<class>`` per class present in the targets."""
        iou, accuracy = self.per_class()
        present = ~torch.isnan(iou)
        total = self.matrix.sum()
        names = class_names if class_names is not None else [str(i) for i in range(self.num_classes)]
        result = {
            "mIoU": float(iou[present].mean()) if present.any() else float("nan"),
            "mAcc": float(accuracy[present].mean()) if present.any() else float("nan"),
            "allAcc": float(self.matrix.diagonal().sum() / total) if total else float("nan"),
            "count": int(total),
        }
        for group, members in (groups or {}).items():
            unknown = sorted(set(members) - set(names))
            if unknown:
                raise ValueError(f"ConfusionMatrix.summary: group {group!r} names classes {unknown[:3]} that are not "
                                 "among class_names")
            rows = torch.tensor([names.index(name) for name in members], dtype=torch.int64)
            group_iou = iou[rows][present[rows]]
            result[f"mIoU/{group}"] = float(group_iou.mean()) if group_iou.numel() else float("nan")
        result.update({f"IoU/{name}": float(iou[i]) for i, name in enumerate(names) if present[i]})
        return result


class Totals:
    """``size`` running sums (float64) of per-batch quantities, e.g. a loss weighted by the batch
    size and the number of items, so that a mean over processes is a ratio of summed totals."""

    def __init__(self, size: int, device: torch.device | str = "cpu") -> None:
        if size < 1:
            raise ValueError(f"Totals: size must be >= 1, got {size}")
        self.values = torch.zeros(size, dtype=torch.float64, device=device)

    def add(self, *values: Tensor | float) -> None:
        """Add one number (a Python number or a one-element tensor, left on its device) to each sum."""
        if len(values) != self.values.numel():
            raise ValueError(f"Totals.add: expected {self.values.numel()} values, got {len(values)}")
        self.values += torch.stack([torch.as_tensor(value, device=self.values.device).to(torch.float64).reshape(())
                                    for value in values])

    def all_reduce(self) -> None:
        """Sum the totals of every process (a no-op outside ``torch.distributed``)."""
        _sum_over_processes(self.values)

    def tolist(self) -> list[float]:
        return self.values.tolist()


class PartIoU:
    """Part segmentation's instance and class mIoU as the official ShapeNetPart evaluation
    (PointNet++, Point-MAE, PointMLP ``test_partseg``) computes them.

    Each shape's prediction is the best-scoring part *of its category* (scores of other
    categories' parts are ignored); its IoU is the mean over the category's parts of
    ``|pred = p and target = p| / |pred = p or target = p|``, where a part absent from both
    prediction and ground truth counts 1. Instance mIoU averages the shape IoUs over all shapes,
    class mIoU averages them per category and then over the categories present. Points labelled
    ``-1`` are left out.

    Args:
        part_mask: ``(C, P)`` bool, the parts of each of the ``C`` categories
            (:func:`ppt.data.category_part_mask` for ShapeNetPart).
        category_names: names of the ``C`` categories (the keys of the per-category IoUs).
    """

    def __init__(self, part_mask: Tensor, category_names: Sequence[str], device: torch.device | str = "cpu") -> None:
        if part_mask.dim() != 2 or part_mask.dtype != torch.bool or len(category_names) != part_mask.shape[0]:
            raise ValueError(f"PartIoU: part_mask must be bool (categories, parts) with one row per category name, "
                             f"got {part_mask.dtype} {tuple(part_mask.shape)} for {len(category_names)} names")
        self.part_mask = part_mask.to(device)
        self.category_names = list(category_names)
        # per category: sum of shape IoUs, number of shapes; then correct and labelled points
        self.sums = torch.zeros(part_mask.shape[0], dtype=torch.float64, device=device)
        self.shapes = torch.zeros(part_mask.shape[0], dtype=torch.float64, device=device)
        self.points = torch.zeros(2, dtype=torch.float64, device=device)

    def restrict(self, scores: Tensor, categories: Tensor) -> Tensor:
        """``(B, N)`` predictions: the best part of each shape's category under ``scores`` ``(B, N, P)``."""
        allowed = self.part_mask.to(scores.device)[categories]
        return scores.float().masked_fill(~allowed[:, None, :], float("-inf")).argmax(-1)

    def shape_ious(self, prediction: Tensor, target: Tensor, categories: Tensor) -> Tensor:
        """``(B,)`` float64 IoU of each shape from predicted and true part ids ``(B, N)``."""
        parts = self.part_mask.shape[1]
        labelled = target >= 0
        offsets = torch.arange(prediction.shape[0], device=prediction.device)[:, None] * parts

        def counts(mask: Tensor, labels: Tensor) -> Tensor:
            flat = (labels.clamp(0, parts - 1) + offsets)[mask & labelled]
            return torch.bincount(flat, minlength=prediction.shape[0] * parts).view(-1, parts).double()

        intersection = counts(prediction == target, target)
        union = counts(torch.ones_like(labelled), prediction) + counts(torch.ones_like(labelled), target) - intersection
        iou = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
        mask = self.part_mask.to(prediction.device)[categories]
        return (iou * mask).sum(1) / mask.sum(1)

    def update(self, scores: Tensor, target: Tensor, categories: Tensor) -> None:
        """Add shapes: part ``scores`` ``(B, N, P)`` (logits or log-probabilities), true part ids
        ``target`` ``(B, N)`` and category indices ``categories`` ``(B,)``."""
        if scores.dim() != 3 or scores.shape[:2] != target.shape or categories.shape != target.shape[:1] \
                or scores.shape[2] != self.part_mask.shape[1]:
            raise ValueError(f"PartIoU.update: expected scores (B, N, {self.part_mask.shape[1]}), target (B, N) and "
                             f"categories (B,), got {tuple(scores.shape)}, {tuple(target.shape)}, "
                             f"{tuple(categories.shape)}")
        if categories.numel() and (int(categories.min()) < 0 or int(categories.max()) >= self.part_mask.shape[0]):
            raise ValueError(f"PartIoU.update: categories must lie in [0, {self.part_mask.shape[0]})")
        prediction = self.restrict(scores, categories)
        ious = self.shape_ious(prediction, target, categories).to(self.sums.device)
        categories = categories.to(self.sums.device)
        self.sums.index_add_(0, categories, ious)
        self.shapes.index_add_(0, categories, torch.ones_like(ious))
        labelled = target >= 0
        self.points += torch.stack([((prediction == target) & labelled).sum(), labelled.sum()]).double().to(self.points)

    def all_reduce(self) -> None:
        """Sum the totals of every process (a no-op outside ``torch.distributed``)."""
        for tensor in (self.sums, self.shapes, self.points):
            _sum_over_processes(tensor)

    def summary(self) -> dict[str, float]:
        """``instance_mIoU``, ``class_mIoU``, ``allAcc`` (point accuracy), ``count`` (shapes) and
        ``IoU/<category>`` for each category present."""
        present = self.shapes > 0
        per_category = self.sums / self.shapes.clamp(min=1)
        total = float(self.shapes.sum())
        result = {
            "instance_mIoU": float(self.sums.sum() / total) if total else float("nan"),
            "class_mIoU": float(per_category[present].mean()) if present.any() else float("nan"),
            "allAcc": float(self.points[0] / self.points[1]) if self.points[1] > 0 else float("nan"),
            "count": int(total),
        }
        result.update({f"IoU/{name}": float(per_category[i]) for i, name in enumerate(self.category_names)
                       if present[i]})
        return result
