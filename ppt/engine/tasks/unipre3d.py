"""UniPre3D pre-training through the shared train loop (task ``unipre3d``; docs/unipre3d.md).

A :class:`PretrainLevel` says how one level's data and model plug in: its datasets (real ones by
``data.root``, or synthetic data written to the cache on first use), how samples collate, the
model, and how a batch becomes renders and their target images. :class:`UniPre3DTask` does the
rest for every level: the weighted squared-error loss, PSNR in the training log and the
evaluation, and the render grids (``OUT/previews/step_NNNNNNN.png``: input points, reference view,
then render and ground truth of every view). :data:`LEVELS` maps ``model.name`` to its level:
``unipre3d-object`` (:class:`ObjectLevel`, ShapeNet renders), ``unipre3d-object-pointmlp``
(:class:`PointMLPObjectLevel`, the same renders on PointMLP), ``unipre3d-scene`` (:class:`SceneLevel`,
ScanNet RGB-D frames, SpUNet) and ``unipre3d-scene-ptv3`` (the same on Point Transformer V3).

:func:`export_backbone` writes a checkpoint's backbone weights as a bare safetensors file that the
fine-tuning recipes load with ``--set model.weights=FILE`` (``ppt export-backbone``).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ppt.engine.builders import cache_root, ptv3_arguments, write_once
from ppt.engine.config import RecipeConfig, SourceConfig
from ppt.engine.metrics import Totals
from ppt.engine.tasks.base import Autocast, Task

__all__ = ["UniPre3DTask", "PretrainLevel", "ObjectLevel", "PointMLPObjectLevel", "SceneLevel", "LEVELS",
           "PreviewItem", "psnr",
           "write_render_grid", "export_backbone"]


def psnr(renders: Tensor, images: Tensor) -> Tensor:
    """Peak signal-to-noise ratio (dB, peak 1) of each image ``(..., H, W, C)`` -> ``(...)``, the
    renders clamped to [0, 1]."""
    error = (renders.detach().float().clamp(0, 1) - images.float()).square().mean(dim=(-3, -2, -1))
    return -10.0 * torch.log10(error.clamp(min=1e-10))


class PreviewItem(NamedTuple):
    """One row of a render grid: the input ``points`` ``(N, 3)``, the reference view's camera
    (``viewmat`` ``(4, 4)``, ``K`` ``(3, 3)``) and image ``(H, W, 3)``, the ``renders`` and ``targets``
    ``(V, H, W, 3)``."""

    points: Tensor
    viewmat: Tensor
    K: Tensor
    reference: Tensor
    renders: Tensor
    targets: Tensor


class PretrainLevel(ABC):
    """One level (objects or scenes) of the pre-training. ``datasets``: the ``data.sources.*.dataset``
    kinds it reads; ``backbone_prefix``: the key prefix of the backbone in the model's state dict;
    ``background``: the colour behind the Gaussians, which the loss weighting tells apart."""

    datasets: tuple[str, ...] = ()
    backbone_prefix: str = "backbone."
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    reference_in_targets: bool = False
    """Whether view 0 of the targets is the 2D branch's reference view (objects), so that only views
    ``1 ..`` are novel; scenes render target frames apart from their reference frames."""

    @abstractmethod
    def dataset(self, config: RecipeConfig, source: SourceConfig, split: str, *, train: bool,
                is_main: bool = True) -> Dataset: ...

    @abstractmethod
    def collate(self, config: RecipeConfig, samples: Sequence) -> object: ...

    @abstractmethod
    def build_model(self, config: RecipeConfig) -> nn.Module: ...

    @abstractmethod
    def render(self, model: nn.Module, batch) -> tuple[Tensor, Tensor]:
        """The renders of every view of a (device-resident) batch and their target images, both
        ``(B, V, H, W, 3)``."""

    @abstractmethod
    def preview_items(self, batch, renders: Tensor) -> list[PreviewItem]: ...

    @abstractmethod
    def backbone_config(self, config: RecipeConfig) -> dict:
        """What a fine-tuning recipe must match to load the exported backbone (export metadata)."""


def _model_options(config: RecipeConfig) -> dict:
    """The model settings both levels take from ``unipre3d``: the 2D branch and the Gaussian head."""
    settings = config.unipre3d
    options = {} if settings.offset_scale is None else {"offset_scale": settings.offset_scale}
    return dict(image_encoder=None if settings.image_encoder == "none" else settings.image_encoder,
                head_hidden=settings.head_hidden, min_log_scale=settings.min_log_scale,
                max_log_scale=settings.max_log_scale, sh_degree=settings.sh_degree, **options)


class ObjectLevel(PretrainLevel):
    """Objects: :class:`ppt.data.ShapeNetRenders` (``dataset: shapenet-renders``; synthetic renders
    of ``ppt data synth-renders`` without a root) and :class:`ppt.models.UniPre3D` (the Point-MAE
    transformer, Gaussians at its group centres). Training clouds turn with their cameras
    (:class:`ppt.data.RotateWithCameras`) when ``data.augment``; then, with ``unipre3d.object_frame:
    unit-y-up``, every cloud moves into the object datasets' frame with its cameras
    (:class:`ppt.data.NormalizeWithCameras`)."""

    datasets = ("shapenet-renders",)
    reference_in_targets = True

    def dataset(self, config: RecipeConfig, source: SourceConfig, split: str, *, train: bool,
                is_main: bool = True) -> Dataset:
        from ppt.data import Compose, NormalizeWithCameras, RotateWithCameras, ShapeNetRenders

        settings = config.unipre3d
        if source.frames_root:
            raise ValueError("frames_root is a setting of scannet-frames sources; shapenet-renders reads root only")
        root = Path(source.root).expanduser() if source.root else self.synthetic_root(config, is_main=is_main)
        transforms = [RotateWithCameras()] if train and config.data.augment else []
        if settings.object_frame == "unit-y-up":
            transforms.append(NormalizeWithCameras())
        return ShapeNetRenders(root, split, views=settings.views, num_points=config.data.num_points,
                               seed=config.train.seed, image_size=settings.image_size,
                               transform=Compose(transforms) if transforms else None)

    @staticmethod
    def synthetic_root(config: RecipeConfig, *, is_main: bool = True) -> Path:
        from ppt.data import write_synthetic_renders

        synthetic, size = config.data.synthetic, config.unipre3d.image_size
        name = (f"shapenet-renders-seed{synthetic.seed}-{synthetic.renders_per_class}x{synthetic.render_views}views-"
                f"{synthetic.object_points}pts-{synthetic.render_gaussians}gaussians-{size}px")
        return write_once(cache_root(config.data) / "synthetic" / name, "shapenet-renders",
                          lambda folder: write_synthetic_renders(
                              folder, per_class=synthetic.renders_per_class, views=synthetic.render_views,
                              num_points=synthetic.object_points, gaussians=synthetic.render_gaussians,
                              image_size=size, seed=synthetic.seed), is_main=is_main)

    def collate(self, config: RecipeConfig, samples: Sequence):
        from ppt.data import collate_renders

        return collate_renders(samples)

    def build_model(self, config: RecipeConfig) -> nn.Module:
        from ppt.models import UniPre3D

        model = config.model
        return UniPre3D(num_groups=model.num_groups, group_size=model.group_size, depth=model.depth, dim=model.dim,
                        heads=model.heads, drop_path=0.1 if model.drop_path is None else model.drop_path,
                        image_size=config.unipre3d.image_size, background=self.background, **_model_options(config))

    def render(self, model: nn.Module, batch) -> tuple[Tensor, Tensor]:
        return model(*batch), batch.images

    def backbone_config(self, config: RecipeConfig) -> dict:
        model = config.model
        return {"name": "point-mae", "num_groups": model.num_groups, "group_size": model.group_size,
                "depth": model.depth, "dim": model.dim, "heads": model.heads}

    def preview_items(self, batch, renders: Tensor) -> list[PreviewItem]:
        return [PreviewItem(batch.points[i], batch.viewmats[i, 0], batch.Ks[i, 0], batch.images[i, 0], renders[i],
                            batch.images[i]) for i in range(len(batch.points))]


class PointMLPObjectLevel(ObjectLevel):
    """Objects on PointMLP: the data of :class:`ObjectLevel` and :class:`ppt.models.UniPre3DPointMLP`
    (PointMLP's encoder with ``model.pointmlp``'s settings, its decoder, a Gaussian per input point)."""

    def build_model(self, config: RecipeConfig) -> nn.Module:
        from ppt.models import UniPre3DPointMLP

        return UniPre3DPointMLP(backbone=self.encoder_settings(config), image_size=config.unipre3d.image_size,
                                background=self.background, **_model_options(config))

    @staticmethod
    def encoder_settings(config: RecipeConfig) -> dict:
        """The ``model.pointmlp`` settings of the backbone (encoder and decoder)."""
        from ppt.engine.builders import DECODER_SETTINGS, pointmlp_settings

        if config.model.pointmlp.variant != "pointmlp":
            raise ValueError(f"unipre3d-object-pointmlp pre-trains the pointmlp variant (UniPre3D's); got "
                             f"model.pointmlp.variant={config.model.pointmlp.variant!r}")
        return pointmlp_settings(config.model, "unipre3d-object-pointmlp", DECODER_SETTINGS)

    def backbone_config(self, config: RecipeConfig) -> dict:
        from ppt.models.unipre3d import UNIPRE3D_POINTMLP

        settings = {**UNIPRE3D_POINTMLP, **self.encoder_settings(config)}
        return {"name": "pointmlp", **{key: list(value) if isinstance(value, tuple) else value
                                       for key, value in settings.items()}}


def frame_size(config: RecipeConfig) -> tuple[int, int]:
    """``unipre3d.frame_size`` as ``(width, height)``."""
    size = config.unipre3d.frame_size
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"unipre3d.frame_size must be [width, height], both >= 1, got {list(size)}")
    return int(size[0]), int(size[1])


class SceneLevel(PretrainLevel):
    """Scenes: :class:`ppt.data.ScanNetFrames` (``dataset: scannet-frames``: the Pointcept-format
    clouds under ``root``, their RGB-D frames under ``frames_root``, default ``root/2D``; without a
    root, synthetic rooms with frames of ``ppt data synth-frames``) and
    :class:`ppt.models.UniPre3DScene` (a Gaussian per voxel, the reference depths fused after the
    stem) on ``backbone``: ``"spunet"`` (``model.base_channels``, ``channels``, ``layers``) or
    ``"ptv3"`` (``model.ptv3``). ``unipre3d.views`` target frames of ``unipre3d.frame_size`` per
    scene, each with a reference frame within ``unipre3d.reference_distance``; white background
    (official). The clouds are not augmented (as officially): moving them would take them off their
    frames."""

    datasets = ("scannet-frames",)
    background = (1.0, 1.0, 1.0)

    def __init__(self, backbone: str = "spunet") -> None:
        self.backbone = backbone

    def dataset(self, config: RecipeConfig, source: SourceConfig, split: str, *, train: bool,
                is_main: bool = True) -> Dataset:
        from ppt.data import ScanNetFrames

        if config.unipre3d.object_frame != "cameras":
            raise ValueError(f"unipre3d.object_frame={config.unipre3d.object_frame!r} is a setting of the object "
                             "level; the scene level keeps the frames' world coordinates (object_frame=cameras)")
        if config.data.augment:
            raise ValueError("the unipre3d scene level has no augmentation (a moved cloud would leave its frames, and "
                             "the official scene recipe uses none); set data.augment=false")
        if source.root:
            root = Path(source.root).expanduser()
            frames_root = Path(source.frames_root).expanduser() if source.frames_root else None
        elif source.frames_root:
            raise ValueError("a scannet-frames source with frames_root needs its root too (Pointcept-format clouds)")
        else:
            root, frames_root = self.synthetic_root(config, is_main=is_main), None
        settings = config.unipre3d
        return ScanNetFrames(root, split, frames_root=frames_root, targets=settings.views,
                             reference_distance=settings.reference_distance, size=frame_size(config),
                             grid_size=config.data.grid_size, seed=config.train.seed, random_frames=train)

    @staticmethod
    def synthetic_root(config: RecipeConfig, *, is_main: bool = True) -> Path:
        """Synthetic rooms with RGB-D frames in the cache: colour at twice ``frame_size`` and depth
        at ``frame_size`` (ScanNet's colour frames are also finer than its depth frames)."""
        from ppt.data import write_synthetic_frames

        synthetic = config.data.synthetic
        width, height = frame_size(config)
        name = (f"scannet-frames-seed{synthetic.seed}-{synthetic.scenes}scenes-{synthetic.frames}frames-"
                f"density{synthetic.density:g}-{width}x{height}px")
        return write_once(cache_root(config.data) / "synthetic" / name, "scannet-frames",
                          lambda folder: write_synthetic_frames(
                              folder, synthetic.scenes, frames=synthetic.frames, size=(2 * width, 2 * height),
                              depth_size=(width, height), seed=synthetic.seed, density=synthetic.density),
                          is_main=is_main)

    def collate(self, config: RecipeConfig, samples: Sequence):
        from ppt.data import collate_frames

        return collate_frames(samples, tuple(config.data.feat_keys))

    def build_model(self, config: RecipeConfig) -> nn.Module:
        from ppt.models import UniPre3DScene

        model, settings = config.model, config.unipre3d
        backbone = (dict(backbone_kwargs=ptv3_arguments(model)) if self.backbone == "ptv3" else
                    dict(base_channels=model.base_channels, channels=tuple(model.channels), layers=tuple(model.layers)))
        return UniPre3DScene(in_channels=3 * len(config.data.feat_keys), backbone=self.backbone, **backbone,
                             image_size=frame_size(config), background=self.background,
                             voxel_size=config.data.grid_size, foreground_weight=settings.foreground_weight,
                             background_weight=settings.background_weight, **_model_options(config))

    def render(self, model: nn.Module, batch) -> tuple[Tensor, Tensor]:
        return model(batch), batch.images

    def backbone_config(self, config: RecipeConfig) -> dict:
        model, in_channels = config.model, 3 * len(config.data.feat_keys)
        if self.backbone == "ptv3":
            return {"name": "ptv3", "in_channels": in_channels,
                    **{key: list(value) if isinstance(value, tuple) else value
                       for key, value in ptv3_arguments(model).items()}}
        return {"name": "spunet", "in_channels": in_channels,
                "base_channels": model.base_channels, "channels": list(model.channels), "layers": list(model.layers)}

    def preview_items(self, batch, renders: Tensor) -> list[PreviewItem]:
        points = batch.points
        return [PreviewItem(points.coord[points.batch == i], batch.reference_viewmats[i, 0], batch.reference_Ks[i, 0],
                            batch.reference_images[i, 0], renders[i], batch.images[i])
                for i in range(points.batch_size)]


LEVELS: dict[str, PretrainLevel] = {"unipre3d-object": ObjectLevel(), "unipre3d-object-pointmlp": PointMLPObjectLevel(),
                                    "unipre3d-scene": SceneLevel(), "unipre3d-scene-ptv3": SceneLevel("ptv3")}
"""``model.name`` -> its level."""


def level_of(config: RecipeConfig) -> PretrainLevel:
    if config.model.name not in LEVELS:
        raise ValueError(f"task 'unipre3d' needs model.name in {sorted(LEVELS)}, got {config.model.name!r}")
    level = LEVELS[config.model.name]
    for name, source in config.data.sources.items():
        if source.dataset not in level.datasets:
            raise ValueError(f"model {config.model.name} reads datasets {level.datasets}, but data.sources.{name} "
                             f"is {source.dataset!r}")
    return level


class UniPre3DTask(Task):
    """Gaussian-splatting pre-training: the loss is the squared error of the renders weighted
    ``unipre3d.foreground_weight`` on object pixels and ``unipre3d.background_weight`` on the
    level's background (:func:`ppt.models.weighted_l2_loss`); evaluation reports that loss, the
    mean PSNR of the views and that of the views the 2D branch did not see (``PSNR/novel``)."""

    headline_metrics = ("PSNR", "loss")

    def __init__(self, config: RecipeConfig) -> None:
        self.config = config
        self.level = level_of(config)
        self.class_names = {name: [] for name in config.data.sources}  # nothing to classify
        self._psnr_sum, self._psnr_count = 0.0, 0
        self._preview_batch = None

    def dataset_class(self, source: SourceConfig) -> type:
        raise TypeError("UniPre3DTask builds its datasets through its level")

    def dataset(self, source: SourceConfig, split: str, *, train: bool, is_main: bool = True) -> Dataset:
        dataset = self.level.dataset(self.config, source, split, train=train, is_main=is_main)
        if not train and self._preview_batch is None and len(dataset):
            self._preview_batch = [dataset[i] for i in range(min(len(dataset), self.config.unipre3d.preview_objects))]
        return dataset

    def collate(self, samples: Sequence):
        return self.level.collate(self.config, samples)

    def build_model(self) -> nn.Module:
        model = self.level.build_model(self.config)
        if self.config.model.weights:
            from ppt.models import load_weights

            print(load_weights(model, self.config.model.weights, format=self.config.model.weights_format))
        return model

    def _loss_and_psnr(self, model: nn.Module, batch) -> tuple[Tensor, Tensor]:
        from ppt.models import weighted_l2_loss

        settings = self.config.unipre3d
        renders, targets = self.level.render(model, batch)
        loss = weighted_l2_loss(renders.float(), targets, self.level.background,
                                foreground_weight=settings.foreground_weight,
                                background_weight=settings.background_weight)
        return loss, psnr(renders, targets)

    def loss(self, model: nn.Module, batch) -> Tensor:
        loss, values = self._loss_and_psnr(model, batch)
        self._psnr_sum += float(values.sum())
        self._psnr_count += values.numel()
        return loss

    def train_log(self) -> dict[str, float]:
        if not self._psnr_count:
            return {}
        mean = self._psnr_sum / self._psnr_count
        self._psnr_sum, self._psnr_count = 0.0, 0
        return {"PSNR": mean}

    def evaluate_batch(self, model: nn.Module, batch, confusion) -> None:
        raise ValueError("a unipre3d checkpoint has no classes to tabulate: its validation loss and PSNR are in the "
                         "run's log.jsonl (UniPre3DTask.evaluate)")

    def evaluate(self, model: nn.Module, datasets: dict[str, Dataset], *, device: torch.device, autocast: Autocast,
                 rank: int = 0, world_size: int = 1, progress: Callable[[Iterable], Iterable] | None = None
                 ) -> dict[str, dict[str, float]]:
        """Per source: the loss (mean over batches weighted by their size), the mean PSNR of all views
        and ``PSNR/novel``, the mean PSNR of the views the 2D branch did not see (objects: views
        ``1 ..``, view 0 being the reference view; scenes: every target frame). Without novel views
        (objects with ``unipre3d.views=1``) ``PSNR/novel`` is left out."""
        skip = 1 if self.level.reference_in_targets else 0

        def add_batch(model: nn.Module, batch, totals: Totals) -> None:
            loss, values = self._loss_and_psnr(model, batch)  # values: the PSNR of every view, (B, V)
            novel = values[:, skip:]
            totals.add(loss * values.shape[0], values.shape[0], values.sum(), values.numel(), novel.sum(),
                       novel.numel())

        sums = self.accumulate_shards(model, datasets, lambda _: Totals(6, device=device), add_batch, device=device,
                                      autocast=autocast, rank=rank, world_size=world_size, progress=progress)
        results = {}
        for name, totals in sums.items():
            loss_sum, objects, psnr_sum, views, novel_sum, novel_views = totals.tolist()
            results[name] = {"loss": loss_sum / objects if objects else math.nan,
                             "PSNR": psnr_sum / views if views else math.nan, "count": objects}
            if novel_views:
                results[name]["PSNR/novel"] = novel_sum / novel_views
        return results

    def write_previews(self, model: nn.Module, *, step: int, out: Path, device: torch.device) -> None:
        if not self._preview_batch:
            return
        batch = self.collate(self._preview_batch).to(device)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            renders, _ = self.level.render(model, batch)
        model.train(was_training)
        items = [PreviewItem(*(t.detach().float().cpu() for t in item))
                 for item in self.level.preview_items(batch, renders)]
        write_render_grid(items, out / f"step_{step:07d}.png", title=f"step {step}")


def _project(points: Tensor, viewmat: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel coordinates ``(M, 2)`` and depths ``(M,)`` of the points in front of the camera."""
    camera = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    camera = camera[camera[:, 2] > 1e-6]
    pixels = camera @ K.T
    return pixels[:, :2] / pixels[:, 2:], camera[:, 2]


def write_render_grid(items: Sequence[PreviewItem], path: str | PathLike, *, title: str = "") -> Path:
    """A PNG with one row per item: the input points seen from the reference camera (coloured by
    depth), the reference view, then the render and the ground truth of every view."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not items:
        raise ValueError("write_render_grid: no items")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    views = items[0].renders.shape[0]
    columns = 2 + 2 * views
    figure, axes = plt.subplots(len(items), columns, figsize=(1.6 * columns, 1.7 * len(items)), squeeze=False)
    for row, item in enumerate(items):
        height, width = item.reference.shape[:2]
        pixels, depth = _project(item.points, item.viewmat, item.K)
        axis = axes[row, 0]
        axis.set_facecolor("black")
        axis.scatter(pixels[:, 0], pixels[:, 1], c=-depth, s=2, cmap="viridis", linewidths=0)
        axis.set_xlim(0, width)
        axis.set_ylim(height, 0)
        axis.set_aspect("equal")
        panels = [("reference", item.reference)]
        for view in range(views):
            panels += [(f"render {view}", item.renders[view]), (f"truth {view}", item.targets[view])]
        for column, (label, image) in enumerate(panels, start=1):
            axes[row, column].imshow(image.clamp(0, 1).numpy(), interpolation="nearest")
            if row == 0:
                axes[row, column].set_title(label, fontsize=7)
        if row == 0:
            axis.set_title("input points", fontsize=7)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


BACKBONE_FORMAT = "ppt-backbone"


def export_backbone(checkpoint: str | PathLike, out: str | PathLike) -> dict:
    """Write the backbone weights of a ``unipre3d`` training checkpoint (the weight average when the
    run kept one) to ``out``: a safetensors file in the backbone's own key names, so
    ``model.weights=out`` loads it into the fine-tuning recipes with only their head left missing:
    for the object level :class:`ppt.models.PointMAE`'s (the object classifiers), on PointMLP the
    encoder and decoder of :class:`ppt.models.UniPre3DPointMLP` (``pointmlp`` recipes, with
    ``model.weights_format=pointmlp``, which leaves the decoder out of a classifier), for the scene
    level :class:`ppt.models.SpUNet`'s (the ``spunet-*`` segmentation recipes) or, from
    ``unipre3d-scene-ptv3``, :class:`ppt.models.PointTransformerV3`'s (the ``ptv3-*`` recipes).
    Returns the metadata written with it."""
    from safetensors.torch import load_file, save_file

    from ppt.engine.checkpoint import read_meta
    from ppt.engine.config import config_from_dict

    checkpoint = Path(checkpoint)
    meta = read_meta(checkpoint)
    config = config_from_dict(meta.config, f"{checkpoint} metadata")
    if config.task != "unipre3d":
        raise ValueError(f"{checkpoint}: a {config.task!r} checkpoint; export-backbone reads unipre3d pre-training "
                         "checkpoints")
    if config.model.name not in LEVELS:
        raise ValueError(f"{checkpoint}: unknown pre-training model {config.model.name!r}; known: {sorted(LEVELS)}")
    level = LEVELS[config.model.name]
    prefix = level.backbone_prefix
    state = load_file(str(checkpoint))
    backbone = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    if not backbone:
        raise ValueError(f"{checkpoint}: no weights under {prefix!r}")
    info = {"format": BACKBONE_FORMAT, "source": str(checkpoint), "recipe": meta.provenance.get("recipe", ""),
            "step": meta.step, "model": config.model.name, "backbone": level.backbone_config(config),
            "ema": config.train.ema_decay is not None}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(backbone, str(out), metadata={BACKBONE_FORMAT: json.dumps(info)})
    return {**info, "tensors": len(backbone), "parameters": sum(v.numel() for v in backbone.values())}
