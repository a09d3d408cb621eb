"""Object classification (task ``classification``): any network mapping ``(B, N, 3)`` clouds of
an :class:`~ppt.data.ObjectBatch` to logits, with Point-MAE's subsampling, augmentation and
optional test-time voting."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ppt.data import ObjectBatch, collate_objects
from ppt.data.objects import transforms as OT
from ppt.engine.builders import build_model, dataset_root
from ppt.engine.config import SourceConfig
from ppt.engine.metrics import ConfusionMatrix
from ppt.engine.object_data import OBJECT_DATASETS, object_class_names, open_object_dataset
from ppt.engine.tasks.base import Task

__all__ = ["ClassificationTask", "vote_logits"]


class ClassificationTask(Task):
    """Object classification: cross-entropy (with ``train.label_smoothing``, 0.2 in Point-MAE and
    DAPT) on clouds subsampled to ``data.num_points`` (random FPS + scale-and-translate for
    training, FPS for evaluation, as Point-MAE); overall (``allAcc``) and mean-class (``mAcc``) accuracy.
    With ``train.eval_votes > 1`` evaluation averages the logits of that many scale-and-translate
    passes per cloud (Point-MAE's voting, which tunes on the test set: optimistic)."""

    headline_metrics = ("allAcc", "mAcc")

    def dataset_class(self, source: SourceConfig) -> type:
        unlabelled = {"shapenet55", "shapenetpart"}  # pre-training clouds; part labels (task part-segmentation)
        if source.dataset not in OBJECT_DATASETS or source.dataset in unlabelled:
            raise ValueError(f"task 'classification' needs labelled object datasets "
                             f"{sorted(set(OBJECT_DATASETS) - unlabelled)}, got {source.dataset!r}")
        return OBJECT_DATASETS[source.dataset]

    def source_class_names(self, source: SourceConfig) -> Sequence[str]:
        self.dataset_class(source)
        return object_class_names(source)

    def dataset(self, source: SourceConfig, split: str, *, train: bool, is_main: bool = True) -> Dataset:
        points = self.config.data.num_points
        if train:
            transform = OT.Compose([OT.RandomFarthestPointSubsample(points), OT.ScaleAndTranslate()]
                                   if self.config.data.augment else [OT.FarthestPointSubsample(points)])
        else:
            transform = OT.FarthestPointSubsample(points)
        root = dataset_root(source, self.config.data, is_main=is_main)
        return open_object_dataset(source, root, split, transform, seed=self.config.train.seed,
                                   synthetic=self.config.data.synthetic, num_points=points)

    def collate(self, samples) -> ObjectBatch:
        return collate_objects(samples)

    def build_model(self) -> nn.Module:
        return build_model(self.config.model, num_classes=self.num_classes, in_channels=3)

    def loss(self, model: nn.Module, batch: ObjectBatch) -> Tensor:
        return F.cross_entropy(model(batch.points).float(), batch.labels, ignore_index=-1,
                               label_smoothing=self.config.train.label_smoothing)

    def evaluate_batch(self, model: nn.Module, batch: ObjectBatch, confusion: ConfusionMatrix) -> None:
        votes = self.config.train.eval_votes
        logits = model(batch.points) if votes <= 1 else vote_logits(model, batch.points, votes)
        confusion.update(logits.argmax(1), batch.labels)


def vote_logits(model: nn.Module, points: Tensor, votes: int, augment: OT.ScaleAndTranslate | None = None,
                seed: int = 0) -> Tensor:
    """Logits ``(B, K)`` averaged over ``votes`` passes of ``augment`` (default: Point-MAE's
    scale-and-translate) applied to every cloud of ``points`` ``(B, N, 3)``, drawn from a generator
    seeded with ``seed`` so an evaluation is reproducible."""
    augment = augment or OT.ScaleAndTranslate()
    generator = torch.Generator().manual_seed(seed)
    total = None
    for _ in range(votes):
        scale, shift = augment.draw(points.shape[0], generator)
        logits = model(points * scale.to(points) + shift.to(points)).float()
        total = logits if total is None else total + logits
    return total / votes
