"""Metrics from a confusion matrix: mIoU / mAcc / allAcc and per-class IoU for segmentation,
overall and mean-class accuracy for classification. Label ``-1`` is ignored. :class:`Totals`
accumulates the sums behind metrics that are ratios (a mean loss, a mean PSNR). :func:`strict_json`
writes records of metrics as standard JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["ConfusionMatrix", "Totals", "strict_json"]


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
