"""The base of every task family: how a recipe's data become batches and a batch becomes a loss
or predictions.

The train loop (:mod:`ppt.engine.trainer`) sees only :class:`Task`, so it knows no model; the
families (:mod:`ppt.engine.tasks.segmentation`, ``.prompt_segmentation``, ``.classification``,
``.pretraining``, ``.unipre3d``) build on this module and are found by name through the registry
:mod:`ppt.engine.tasks`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ppt.engine.batches import DataBatches, ignore_stop_signals
from ppt.engine.config import RecipeConfig, SourceConfig
from ppt.engine.metrics import ConfusionMatrix
from ppt.engine.sampling import shard_indices

__all__ = ["Task", "Autocast"]

Autocast = Callable[[], AbstractContextManager]


class Accumulator(Protocol):
    """What :meth:`Task.accumulate_shards` fills per source: :class:`~ppt.engine.metrics.ConfusionMatrix`
    or :class:`~ppt.engine.metrics.Totals`."""

    def all_reduce(self) -> None: ...


AccumulatorT = TypeVar("AccumulatorT", bound=Accumulator)


class Task(ABC):
    """One family of recipes. ``class_names`` maps each data source to its classes,
    ``class_groups`` to the named groups of them whose mean IoU evaluation adds (ScanNet200's head /
    common / tail; empty for most datasets); ``headline_metrics`` are the metrics printed after
    each evaluation."""

    headline_metrics: tuple[str, ...] = ("mIoU", "mAcc", "allAcc")
    # DDP: models whose steps leave some parameters without gradient (per-dataset norms) say so
    find_unused_parameters: bool = False

    def __init__(self, config: RecipeConfig) -> None:
        self.config = config
        self.class_names: dict[str, list[str]] = {}
        self.class_groups: dict[str, dict[str, tuple[str, ...]]] = {}
        for name, source in config.data.sources.items():
            self.class_names[name] = list(self.source_class_names(source))
            self.class_groups[name] = dict(self.source_class_groups(source))

    def source_class_names(self, source: SourceConfig) -> Sequence[str]:
        return self.dataset_class(source).class_names

    def source_class_groups(self, source: SourceConfig) -> Mapping[str, Sequence[str]]:
        """Named groups of the source's classes whose mean IoU evaluation adds; none by default."""
        return {}

    @abstractmethod
    def dataset_class(self, source: SourceConfig) -> type: ...

    @abstractmethod
    def dataset(self, source: SourceConfig, split: str, *, train: bool, is_main: bool = True) -> Dataset:
        """The dataset of one source and split, with the training or evaluation transforms."""

    @abstractmethod
    def collate(self, samples: Sequence) -> object: ...

    @abstractmethod
    def build_model(self) -> nn.Module: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch) -> Tensor:
        """Mean loss of a (device-resident) batch."""

    @abstractmethod
    def evaluate_batch(self, model: nn.Module, batch, confusion: ConfusionMatrix) -> None:
        """Add the batch's predictions to ``confusion``."""

    def checkpoint_metadata(self, model: nn.Module) -> dict:
        """What a checkpoint's provenance records about the model besides the config (JSON-able)."""
        return {}

    @property
    def num_classes(self) -> int:
        """Output width of the model: the classes of the (first) source; sources must agree."""
        names = list(self.class_names.values())
        if any(len(n) != len(names[0]) for n in names):
            raise ValueError("this task trains one head, but the data sources have different class counts "
                             f"({ {k: len(v) for k, v in self.class_names.items()} })")
        return len(names[0])

    def train_log(self) -> dict[str, float]:
        """Numbers for the step's log record besides the loss (e.g. a training PSNR, averaged since
        the last call); none by default."""
        return {}

    def write_previews(self, model: nn.Module, *, step: int, out: Path, device: torch.device) -> None:
        """Pictures of the model's output at ``step`` into the folder ``out`` (``train.preview_every``);
        none by default."""

    def train_datasets(self, is_main: bool = True) -> list[Dataset]:
        return [self.dataset(source, source.train_split, train=True, is_main=is_main)
                for source in self.config.data.sources.values()]

    def evaluate(self, model: nn.Module, datasets: dict[str, Dataset], *, device: torch.device, autocast: Autocast,
                 rank: int = 0, world_size: int = 1, progress: Callable[[Iterable], Iterable] | None = None
                 ) -> dict[str, dict[str, float]]:
        """Metrics per source (confusion matrices summed over processes)."""
        confusions = self.accumulate_shards(
            model, datasets, lambda name: ConfusionMatrix(len(self.class_names[name]), device=device),
            self.evaluate_batch, device=device, autocast=autocast, rank=rank, world_size=world_size, progress=progress)
        return {name: confusion.summary(self.class_names[name], self.class_groups[name])
                for name, confusion in confusions.items()}

    def accumulate_shards(self, model: nn.Module, datasets: dict[str, Dataset],
                          new_accumulator: Callable[[str], AccumulatorT],
                          add_batch: Callable[[nn.Module, object, AccumulatorT], object], *, device: torch.device,
                          autocast: Autocast, rank: int, world_size: int,
                          progress: Callable[[Iterable], Iterable] | None) -> dict[str, AccumulatorT]:
        """The skeleton of every :meth:`evaluate`: for each source, ``add_batch(model, batch,
        accumulator)`` over this process's shard of its dataset (``data.val_batch_size`` batches on
        ``device``, eval mode, no gradients, under ``autocast``) into ``new_accumulator(source)``,
        which is then summed over the processes."""
        accumulators = {}
        was_training = model.training
        model.eval()
        try:
            for name, dataset in datasets.items():
                accumulator = accumulators[name] = new_accumulator(name)
                loader = DataLoader(torch.utils.data.Subset(dataset, shard_indices(len(dataset), rank, world_size)),
                                    batch_size=self.config.data.val_batch_size, collate_fn=self.collate,
                                    num_workers=self.config.data.num_workers, worker_init_fn=ignore_stop_signals)
                with torch.no_grad(), DataBatches(loader, f"{name} validation data") as batches:
                    for batch in (progress(batches) if progress else batches):
                        with autocast():
                            add_batch(model, batch.to(device), accumulator)
                accumulator.all_reduce()
        finally:
            model.train(was_training)
        return accumulators
