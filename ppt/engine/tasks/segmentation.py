"""Scene segmentation (task ``segmentation``): any network mapping a
:class:`~ppt.sparse.SparseTensor` of a :class:`~ppt.data.SceneBatch` to per-point logits, trained
on Pointcept's SpUNet augmentation chain (indoor rooms) or its outdoor chain (LiDAR sweeps,
:mod:`ppt.data.sweeps.transforms`) and evaluated on every original point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ppt.data import SceneBatch, SceneSample, collate_scenes
from ppt.data.scenes.collate import feature_width
from ppt.data.scenes import transforms as T
from ppt.data.sweeps import SweepDataset, sweep_train_transform, sweep_val_transform
from ppt.data.sweeps.transforms import PointClip
from ppt.engine.batches import DataError
from ppt.engine.builders import SCENE_DATASETS, SWEEP_DATASETS, build_model, dataset_root
from ppt.engine.config import RecipeConfig, SourceConfig
from ppt.engine.losses import SegmentationLoss
from ppt.engine.metrics import ConfusionMatrix
from ppt.engine.tasks.base import Autocast, Task

__all__ = ["SegmentationTask", "scene_train_transform", "scene_val_transform", "limited_data", "point_cloud_range"]


def scene_train_transform(grid_size: float, point_max: int, augment: bool) -> T.Compose:
    """Pointcept's SpUNet training chain (see :mod:`ppt.data.scenes.transforms`); without ``augment``
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


def limited_data(source: SourceConfig, root: Path) -> dict:
    """The scene dataset arguments of ``source.limited`` (the data-efficient benchmark's setting,
    read from ``source.tasks_root``, default ``root/tasks``): ``scenes`` for ``lr<P>``,
    ``labelled_points`` for ``la<K>``."""
    from ppt.data.scenes.data_efficient import (available_limited, read_labelled_points, read_scene_list,
                                                resolve_limited)

    tasks = Path(source.tasks_root).expanduser() if source.tasks_root else root / "tasks"
    kind, path = resolve_limited(source.limited, tasks)
    if not path.is_file():
        if source.root is None and not tasks.is_dir():
            raise FileNotFoundError(f"{tasks} does not exist: the synthetic data in {root} were written by a ppt without "
                                    "the data-efficient lists; delete that folder to have them written again")
        raise FileNotFoundError(f"{path} does not exist; settings in {tasks}: "
                                f"{', '.join(available_limited(tasks)) or 'none'}")
    return {"scenes": read_scene_list(path)} if kind == "lr" else {"labelled_points": read_labelled_points(path)}


def point_cloud_range(source: SourceConfig) -> tuple[float, ...] | None:
    """The ``PointClip`` range of a sweep source: its ``point_cloud_range`` (``[]``: none), else
    its dataset's."""
    if source.point_cloud_range is None:
        return SWEEP_DATASETS[source.dataset].point_cloud_range
    return tuple(source.point_cloud_range) or None


class SegmentationTask(Task):
    """Per-point classification of scenes: ``train.loss`` (cross-entropy by default, Pointcept's
    outdoor configs add class weights or the Lovász-softmax term; :mod:`ppt.engine.losses`) over
    labelled points (``-1`` ignored); validation on one grid sample per scene mapped back to every
    point (the voxel inverse map); :meth:`predict_scene` votes over all test-mode fragments."""

    def __init__(self, config: RecipeConfig) -> None:
        super().__init__(config)
        self.criterion = self.build_criterion()

    def build_criterion(self) -> SegmentationLoss:
        """``train.loss`` for the model's one head (class weights: one per class)."""
        return SegmentationLoss(self.config.train.loss, self.num_classes,
                                label_smoothing=self.config.train.label_smoothing)

    def dataset_class(self, source: SourceConfig) -> type:
        datasets = {**SCENE_DATASETS, **SWEEP_DATASETS}
        if source.dataset not in datasets:
            raise ValueError(f"task {self.config.task!r} needs scene or sweep datasets {sorted(datasets)}, "
                             f"got {source.dataset!r}")
        return datasets[source.dataset]

    def source_class_groups(self, source: SourceConfig) -> Mapping[str, Sequence[str]]:
        return self.dataset_class(source).class_groups  # ScanNet200's head / common / tail

    @property
    def in_channels(self) -> int:
        return feature_width(self.config.data.feat_keys)

    def dataset(self, source: SourceConfig, split: str, *, train: bool, is_main: bool = True) -> Dataset:
        data, dataset_class = self.config.data, self.dataset_class(source)
        if issubclass(dataset_class, SweepDataset):
            clip = point_cloud_range(source)
            transform = (sweep_train_transform(data.grid_size, clip, data.augment) if train
                         else sweep_val_transform(data.grid_size, clip))
        else:
            transform = (scene_train_transform(data.grid_size, data.point_max, data.augment) if train
                         else scene_val_transform(data.grid_size))
        root = dataset_root(source, data, is_main=is_main)
        # training and evaluation need every scene's labels: a scene without them stops the run here
        if not (train and source.limited):
            return dataset_class(root, split, transform, seed=self.config.train.seed, require_labels=True)
        try:  # lists that do not fit the scenes are a problem of the data, reported in one line
            return dataset_class(root, split, transform, seed=self.config.train.seed, require_labels=True,
                                              **limited_data(source, root))
        except ValueError as error:
            raise DataError(f"{source.dataset} with limited={source.limited}: {error}") from None

    def collate(self, samples: Sequence[SceneSample]) -> SceneBatch:
        return collate_scenes(samples, feat_keys=tuple(self.config.data.feat_keys))

    def build_model(self) -> nn.Module:
        return build_model(self.config.model, num_classes=self.num_classes, in_channels=self.in_channels)

    def forward(self, model: nn.Module, batch: SceneBatch) -> Tensor:
        return model(batch.sparse_tensor())

    def loss(self, model: nn.Module, batch: SceneBatch) -> Tensor:
        # over labelled points (outside a limited annotation's points none is), and 0 (not NaN)
        # for a crop without any
        return self.criterion(self.forward(model, batch).float(), batch.labelled_segment, scene=batch.batch)

    def evaluate_batch(self, model: nn.Module, batch: SceneBatch, confusion: ConfusionMatrix) -> None:
        prediction = self.forward(model, batch).argmax(1)
        # every original point takes its voxel's prediction; points dropped before (inverse -1) are skipped
        kept = batch.inverse >= 0
        confusion.update(prediction[batch.inverse.clamp(min=0)][kept], batch.origin_segment[kept])

    def predict_scene(self, model: nn.Module, sample: SceneSample, *, device: torch.device, autocast: Autocast,
                      fragments_per_batch: int = 4) -> Tensor:
        """Class scores ``(N, K)`` for every point of ``sample`` (as stored): softmax votes summed
        over the test-mode grid fragments (:class:`~ppt.data.scenes.transforms.GridFragments`), so
        each point is predicted from a voxel sample that contains it. A LiDAR sweep (a sample
        with ``strength``) is clipped to its source's range and neither centred nor colour-normalised."""
        if sample.strength is not None:
            source = next((s for s in self.config.data.sources.values()
                           if self.dataset_class(s).condition == sample.condition), None)
            clip = None if source is None else point_cloud_range(source)
            sample = sample if clip is None else PointClip(tuple(clip))(sample)
            fragments = T.GridFragments(self.config.data.grid_size)(sample)
        else:
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
