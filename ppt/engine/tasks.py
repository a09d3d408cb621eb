"""Task families: how a recipe's data become batches and a batch becomes a loss or predictions.

The train loop (:mod:`ppt.engine.trainer`) sees only this interface, so it knows no model:
:class:`SegmentationTask` (scene segmentation on :class:`~ppt.data.SceneBatch`, any network
mapping a :class:`~ppt.sparse.SparseTensor` to per-point logits) and :class:`ClassificationTask`
(object classification on :class:`~ppt.data.ObjectBatch`, any network mapping ``(B, N, 3)``
clouds to logits).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ppt.data import ObjectBatch, SceneBatch, SceneSample, collate_objects, collate_scenes
from ppt.data import object_transforms as OT
from ppt.data import transforms as T
from ppt.engine.batches import DataBatches, ignore_stop_signals
from ppt.engine.builders import SCENE_DATASETS, build_model, dataset_root
from ppt.engine.config import RecipeConfig, SourceConfig
from ppt.engine.metrics import ConfusionMatrix
from ppt.engine.object_data import OBJECT_DATASETS, object_class_names, open_object_dataset
from ppt.engine.sampling import shard_indices

__all__ = ["Task", "SegmentationTask", "ClassificationTask", "create_task"]

Autocast = Callable[[], AbstractContextManager]


class Accumulator(Protocol):
    """What :meth:`Task.accumulate_shards` fills per source: :class:`~ppt.engine.metrics.ConfusionMatrix`
    or :class:`~ppt.engine.metrics.Totals`."""

    def all_reduce(self) -> None: ...


AccumulatorT = TypeVar("AccumulatorT", bound=Accumulator)


class Task(ABC):
    """One family of recipes. ``class_names`` maps each data source to its classes;
    ``headline_metrics`` are the metrics printed after each evaluation."""

    headline_metrics: tuple[str, ...] = ("mIoU", "mAcc", "allAcc")
    # DDP: models whose steps leave some parameters without gradient (per-dataset norms) say so
    find_unused_parameters: bool = False

    def __init__(self, config: RecipeConfig) -> None:
        self.config = config
        self.class_names: dict[str, list[str]] = {}
        for name, source in config.data.sources.items():
            self.class_names[name] = list(self.source_class_names(source))

    def source_class_names(self, source: SourceConfig) -> Sequence[str]:
        return self.dataset_class(source).class_names

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
        return {name: confusion.summary(self.class_names[name]) for name, confusion in confusions.items()}

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


# ------------------------------------------------------------------------------------------
# Scene segmentation


def scene_train_transform(grid_size: float, point_max: int, augment: bool) -> T.Compose:
    """Pointcept's SpUNet training chain (see :mod:`ppt.data.transforms`); without ``augment``
    only the centring, grid sampling, crop and colour normalisation."""
    augmentations = [
        T.RandomDropout(dropout_ratio=0.2, application_ratio=0.2),
        T.RandomRotate(angle=(-1, 1), axis="z", center=(0, 0, 0), p=0.5),
        T.RandomRotate(angle=(-1 / 64, 1 / 64), axis="x", p=0.5),
        T.RandomRotate(angle=(-1 / 64, 1 / 64), axis="y", p=0.5),
        T.RandomScale(scale=(0.9, 1.1)),
        T.RandomFlip(p=0.5),
        T.RandomJitter(sigma=0.005, clip=0.02),
        T.ElasticDistortion(),
        T.ChromaticAutoContrast(p=0.2),
        T.ChromaticTranslation(p=0.95, ratio=0.05),
        T.ChromaticJitter(p=0.95, std=0.05),
    ] if augment else []
    return T.Compose([T.CenterShift(apply_z=True), *augmentations, T.GridSample(grid_size=grid_size),
                      T.SphereCrop(point_max=point_max), T.CenterShift(apply_z=False), T.NormalizeColor(),
                      T.ShufflePoint()])


def scene_val_transform(grid_size: float) -> T.Compose:
    """Pointcept's validation chain: one point per voxel, with the inverse map to every point."""
    return T.Compose([T.CenterShift(apply_z=True), T.GridSample(grid_size=grid_size, return_inverse=True),
                      T.CenterShift(apply_z=False), T.NormalizeColor()])


class SegmentationTask(Task):
    """Per-point classification of scenes: cross-entropy over labelled points (``-1`` ignored);
    validation on one grid sample per scene mapped back to every point (the voxel inverse map);
    :meth:`predict_scene` votes over all test-mode fragments."""

    def dataset_class(self, source: SourceConfig) -> type:
        if source.dataset not in SCENE_DATASETS:
            raise ValueError(f"task 'segmentation' needs scene datasets {sorted(SCENE_DATASETS)}, got {source.dataset!r}")
        return SCENE_DATASETS[source.dataset]

    @property
    def in_channels(self) -> int:
        return 3 * len(self.config.data.feat_keys)

    def dataset(self, source: SourceConfig, split: str, *, train: bool, is_main: bool = True) -> Dataset:
        data = self.config.data
        transform = (scene_train_transform(data.grid_size, data.point_max, data.augment) if train
                     else scene_val_transform(data.grid_size))
        root = dataset_root(source, data, is_main=is_main)
        # training and evaluation need every scene's labels: a scene without them stops the run here
        return self.dataset_class(source)(root, split, transform, seed=self.config.train.seed, require_labels=True)

    def collate(self, samples: Sequence[SceneSample]) -> SceneBatch:
        return collate_scenes(samples, feat_keys=tuple(self.config.data.feat_keys))

    def build_model(self) -> nn.Module:
        return build_model(self.config.model, num_classes=self.num_classes, in_channels=self.in_channels)

    def forward(self, model: nn.Module, batch: SceneBatch) -> Tensor:
        return model(batch.sparse_tensor())

    def loss(self, model: nn.Module, batch: SceneBatch) -> Tensor:
        logits = self.forward(model, batch)
        # mean over labelled points, and 0 (not NaN) for a crop without any
        total = F.cross_entropy(logits.float(), batch.segment, ignore_index=-1, reduction="sum",
                                label_smoothing=self.config.train.label_smoothing)
        return total / (batch.segment >= 0).sum().clamp(min=1)

    def evaluate_batch(self, model: nn.Module, batch: SceneBatch, confusion: ConfusionMatrix) -> None:
        prediction = self.forward(model, batch).argmax(1)
        # every original point takes its voxel's prediction; points dropped before (inverse -1) are skipped
        kept = batch.inverse >= 0
        confusion.update(prediction[batch.inverse.clamp(min=0)][kept], batch.origin_segment[kept])

    def predict_scene(self, model: nn.Module, sample: SceneSample, *, device: torch.device, autocast: Autocast,
                      fragments_per_batch: int = 4) -> Tensor:
        """Class scores ``(N, K)`` for every point of ``sample`` (as stored): softmax votes summed
        over the test-mode grid fragments (:class:`~ppt.data.transforms.GridFragments`), so
        each point is predicted from a voxel sample that contains it."""
        sample = T.NormalizeColor()(T.CenterShift(apply_z=True)(sample, None))
        fragments = [T.CenterShift(apply_z=False)(f, None)
                     for f in T.GridFragments(self.config.data.grid_size)(sample)]
        scores = None  # (N, classes of the sample's dataset), sized by the first logits
        model.eval()
        with torch.no_grad():
            for start in range(0, len(fragments), fragments_per_batch):
                batch = self.collate(fragments[start:start + fragments_per_batch]).to(device)
                with autocast():
                    logits = self.forward(model, batch)
                if scores is None:
                    scores = torch.zeros(sample.num_points, logits.shape[1], dtype=torch.float32, device=device)
                scores.index_add_(0, batch.index, logits.float().softmax(1))
        return scores


# ------------------------------------------------------------------------------------------
# Object classification


class ClassificationTask(Task):
    """Object classification: cross-entropy (with ``train.label_smoothing``, 0.2 in Point-MAE and
    DAPT) on clouds subsampled to ``data.num_points`` (random FPS + scale-and-translate for
    training, FPS for evaluation, as Point-MAE); overall (``allAcc``) and mean-class (``mAcc``) accuracy.
    With ``train.eval_votes > 1`` evaluation averages the logits of that many scale-and-translate
    passes per cloud (Point-MAE's voting, which tunes on the test set: optimistic)."""

    headline_metrics = ("allAcc", "mAcc")

    def dataset_class(self, source: SourceConfig) -> type:
        if source.dataset not in OBJECT_DATASETS or source.dataset == "shapenet55":
            raise ValueError(f"task 'classification' needs labelled object datasets "
                             f"{sorted(set(OBJECT_DATASETS) - {'shapenet55'})}, got {source.dataset!r}")
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


from ppt.engine.pretraining import PretrainingTask  # noqa: E402  (it builds on Task, defined above)

TASKS: dict[str, type[Task]] = {"segmentation": SegmentationTask, "classification": ClassificationTask,
                                "pretraining": PretrainingTask}


def create_task(config: RecipeConfig) -> Task:
    if config.task == "unipre3d":  # its own module: it pulls in the renderer and the image encoders
        from ppt.engine.unipre3d import UniPre3DTask

        return UniPre3DTask(config)
    if config.task == "ppt-segmentation":  # its module builds on this one
        from ppt.engine.prompt_task import PromptSegmentationTask

        return PromptSegmentationTask(config)
    return TASKS[config.task](config)
