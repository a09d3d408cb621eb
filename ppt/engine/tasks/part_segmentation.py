"""Part segmentation (task ``part-segmentation``): ShapeNetPart objects with their category, a part
label per point; any network that maps a batch to per-point part scores.

The model contract, so that a recipe alone plugs in another family: ``model.forward`` takes
``(xyz (B, N, 3), cls_label (B,))`` (:class:`ppt.models.PointMAEPartSeg`), or
``(xyz, normals (B, N, 3), cls_label)`` when its signature has a parameter named ``normals``
(PointMLP's part-segmentation model), and returns ``(B, N, parts)`` logits or log-probabilities
(the loss and the metrics are the same for both: log_softmax leaves log-probabilities unchanged).

Training follows Point-MAE's ``segmentation/main.py``: the ``trainval`` split, 2,048 points drawn
with replacement, random scale and shift, cross-entropy (its ``nll_loss`` of log-probabilities).
Evaluation is the official one (:class:`~ppt.engine.metrics.PartIoU`): instance and class mIoU with
each shape's prediction restricted to its category's parts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ppt.data.objects.shapenet_part import (SHAPENETPART_CATEGORIES, SHAPENETPART_PART_NAMES, PartBatch, ShapeNetPart,
                                            category_part_mask, collate_parts)
from ppt.engine.builders import build_model, dataset_root
from ppt.engine.config import SourceConfig
from ppt.engine.metrics import PartIoU
from ppt.engine.tasks.base import Autocast, Task

__all__ = ["PartSegmentationTask", "part_scores", "takes_normals"]


def takes_normals(model: nn.Module) -> bool:
    """Whether ``model`` (or the module a DDP / compile wrapper holds) reads normals: its ``forward``
    has a parameter named ``normals``."""
    inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None) or model
    return "normals" in inspect.signature(inner.forward).parameters


def part_scores(model: nn.Module, batch: PartBatch, normals: bool) -> Tensor:
    """The model's ``(B, N, parts)`` scores for ``batch`` (with normals when ``normals``)."""
    if normals:
        return model(batch.points, batch.normals, batch.categories)
    return model(batch.points, batch.categories)


class PartSegmentationTask(Task):
    """ShapeNetPart part segmentation; sources of dataset ``shapenetpart``. ``data.num_points``:
    points drawn per object (official 2,048); ``data.augment``: the official scale and shift."""

    headline_metrics = ("instance_mIoU", "class_mIoU", "allAcc")

    def __init__(self, config) -> None:
        super().__init__(config)
        self.model_takes_normals = False

    def dataset_class(self, source: SourceConfig) -> type:
        if source.dataset != "shapenetpart":
            raise ValueError(f"task 'part-segmentation' reads dataset 'shapenetpart', got {source.dataset!r}")
        return ShapeNetPart

    def source_class_names(self, source: SourceConfig) -> Sequence[str]:
        self.dataset_class(source)
        return SHAPENETPART_PART_NAMES

    def dataset(self, source: SourceConfig, split: str, *, train: bool, is_main: bool = True) -> Dataset:
        self.dataset_class(source)
        root = dataset_root(source, self.config.data, is_main=is_main)
        return ShapeNetPart(root, split, self.config.data.num_points, augment=train and self.config.data.augment,
                            seed=self.config.train.seed)

    def collate(self, samples) -> PartBatch:
        return collate_parts(samples)

    def build_model(self) -> nn.Module:
        model = build_model(self.config.model, num_classes=self.num_classes, in_channels=3)
        self.model_takes_normals = takes_normals(model)
        return model

    def scores(self, model: nn.Module, batch: PartBatch) -> Tensor:
        return part_scores(model, batch, self.model_takes_normals)

    def loss(self, model: nn.Module, batch: PartBatch) -> Tensor:
        scores = self.scores(model, batch).float()
        return F.cross_entropy(scores.reshape(-1, scores.shape[-1]), batch.parts.reshape(-1), ignore_index=-1)

    def new_metric(self, device: torch.device | str = "cpu") -> PartIoU:
        return PartIoU(category_part_mask(device), SHAPENETPART_CATEGORIES, device=device)

    def evaluate_batch(self, model: nn.Module, batch: PartBatch, metric: PartIoU) -> None:
        metric.update(self.scores(model, batch), batch.parts, batch.categories)

    def evaluate(self, model: nn.Module, datasets: dict[str, Dataset], *, device: torch.device, autocast: Autocast,
                 rank: int = 0, world_size: int = 1, progress: Callable[[Iterable], Iterable] | None = None
                 ) -> dict[str, dict[str, float]]:
        """Instance and class mIoU per source (summed over processes)."""
        metrics = self.accumulate_shards(model, datasets, lambda name: self.new_metric(device), self.evaluate_batch,
                                         device=device, autocast=autocast, rank=rank, world_size=world_size,
                                         progress=progress)
        return {name: metric.summary() for name, metric in metrics.items()}
