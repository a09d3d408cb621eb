"""Point-MAE pre-training as a task of the train loop (recipe ``pointmae-pretrain``).

The model is :class:`ppt.models.PointMAEPretraining`: mask ``model.mask_ratio`` of the patches,
reconstruct them, score with Chamfer-L2. Training clouds are ``data.num_points`` random points of
each ShapeNet-55 cloud (1024 in Point-MAE) with scale-and-translate; evaluation reports the mean
Chamfer-L2 on the test list (``chamfer``; no accuracy, so no ``best.safetensors``: use
``last.safetensors``, which fine-tuning recipes load with ``model.weights``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ppt.data import ObjectBatch, collate_objects
from ppt.data.objects import transforms as OT
from ppt.engine.builders import build_model, dataset_root
from ppt.engine.metrics import ConfusionMatrix, Totals
from ppt.engine.object_data import open_object_dataset
from ppt.engine.config import SourceConfig
from ppt.engine.tasks.base import Autocast, Task

__all__ = ["PretrainingTask"]


class PretrainingTask(Task):
    """Masked point reconstruction on ``shapenet55`` sources (task ``pretraining``)."""

    headline_metrics = ("chamfer",)

    def dataset_class(self, source: SourceConfig) -> type:
        if source.dataset != "shapenet55":
            raise ValueError(f"task 'pretraining' reads unlabelled 'shapenet55' clouds, got {source.dataset!r}")
        from ppt.data import ShapeNet55

        return ShapeNet55

    def source_class_names(self, source: SourceConfig) -> Sequence[str]:
        self.dataset_class(source)
        return ()

    def dataset(self, source: SourceConfig, split: str, *, train: bool, is_main: bool = True) -> Dataset:
        data = self.config.data
        transform = OT.ScaleAndTranslate() if train and data.augment else None
        root = dataset_root(source, data, is_main=is_main)
        return open_object_dataset(source, root, split, transform, seed=self.config.train.seed,
                                   synthetic=data.synthetic, num_points=data.num_points)

    def collate(self, samples) -> ObjectBatch:
        return collate_objects(samples)

    @property
    def num_classes(self) -> int:
        return 0

    def build_model(self) -> nn.Module:
        if self.config.model.name != "point-mae-pretraining":
            raise ValueError(f"task 'pretraining' trains model.name 'point-mae-pretraining', got {self.config.model.name!r}")
        return build_model(self.config.model, num_classes=0, in_channels=3)

    def loss(self, model: nn.Module, batch: ObjectBatch) -> Tensor:
        return model(batch.points).float()

    def evaluate_batch(self, model: nn.Module, batch: ObjectBatch, confusion: ConfusionMatrix | None = None) -> Tensor:
        """The batch's Chamfer-L2 (there is nothing to count in ``confusion``)."""
        return self.loss(model, batch)

    def evaluate(self, model: nn.Module, datasets: dict[str, Dataset], *, device: torch.device, autocast: Autocast,
                 rank: int = 0, world_size: int = 1, progress: Callable[[Iterable], Iterable] | None = None
                 ) -> dict[str, dict[str, float]]:
        """Mean Chamfer-L2 of each source's test clouds (masks drawn at random, as in training)."""

        def add_batch(model: nn.Module, batch: ObjectBatch, totals: Totals) -> None:
            totals.add(self.evaluate_batch(model, batch) * len(batch.labels), len(batch.labels))

        sums = self.accumulate_shards(model, datasets, lambda _: Totals(2, device=device), add_batch, device=device,
                                      autocast=autocast, rank=rank, world_size=world_size, progress=progress)
        results = {}
        for name, totals in sums.items():
            chamfer_sum, clouds = totals.tolist()
            results[name] = {"chamfer": chamfer_sum / max(clouds, 1), "count": int(clouds)}
        return results
