"""Recipes: YAML files shipped in :mod:`ppt.recipes`, loaded into the typed dataclasses below with
OmegaConf structured configs, then overridden with ``--set key=value`` (dotted keys).

An unknown key or a value of the wrong type raises :class:`ConfigError`, whose message names the
key and lists the valid keys at that level. The schema is shared by every family (scene
segmentation, object classification): a recipe fills the sections it uses.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Dict, List, Optional

import omegaconf
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ppt.engine.tasks import TASK_FAMILIES

__all__ = [
    "RecipeConfig", "DataConfig", "SourceConfig", "SyntheticConfig", "ModelConfig", "OptimConfig",
    "ParamGroupConfig", "LossConfig", "PTv3Config", "ScheduleConfig", "TrainConfig", "UniPre3DConfig", "PromptTrainingConfig", "ConfigError", "load_recipe", "list_recipes",
    "recipe_path", "check_config", "config_from_dict", "config_to_dict",
]

TASKS = tuple(TASK_FAMILIES)
BEST_METRICS = ("mIoU", "mAcc", "allAcc", "PSNR", "instance_mIoU", "class_mIoU")
OBJECT_FRAMES = ("cameras", "unit-y-up")
"""Values of ``unipre3d.object_frame``."""
SPUNET_MODELS = ("spunet", "ppt", "unipre3d-scene")  # model.name values built on a SpUNet (model.channels, layers)
LOSS_NAMES = ("ce", "lovasz")  # train.loss terms
LOSS_TASKS = ("segmentation", "ppt-segmentation")  # the tasks that read train.loss


class ConfigError(ValueError):
    """A recipe or an override that does not fit the schema."""


def _pick(key: Any, table: Any) -> Any:
    """``${pick:${data.sources.scanobjectnn.variant},{PB_T50_RS: 0.2, OBJ_BG: 0.5}}`` in a recipe:
    the entry of ``table`` for ``key``, so one setting follows another (per-variant values)."""
    if key not in table:
        raise ValueError(f"pick: {key!r} is not one of {list(table)}")
    value = table[key]
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


if not OmegaConf.has_resolver("pick"):
    # omegaconf 2.4 renamed register_new_resolver to register_resolver (2.3's register_resolver is the legacy API)
    if tuple(int(part) for part in omegaconf.__version__.split(".")[:2]) >= (2, 4):
        OmegaConf.register_resolver("pick", _pick)
    else:
        OmegaConf.register_new_resolver("pick", _pick)


@dataclass
class SourceConfig:
    """One dataset of a recipe.

    ``dataset``: ``scannet``, ``s3dis``, ``structured3d`` (scenes), ``semantickitti``, ``nuscenes``,
    ``waymo`` (LiDAR sweeps) or ``scanobjectnn`` (objects);
    UniPre3D pre-training reads ``shapenet-renders`` or ``scannet-frames``.
    ``root``: the dataset folder; unset, synthetic data is generated into the cache on first use.
    ``ratio``: this dataset's share of the training batches when a recipe has several.
    ``variant``: ScanObjectNN's ``PB_T50_RS``, ``OBJ_BG`` or ``OBJ_ONLY``.
    ``way``/``shot``/``fold``: the few-shot fold ``{way}way_{shot}shot/{fold}.pkl`` (``modelnet40_fewshot``).
    ``frames_root``: ``scannet-frames`` only: the folder of the RGB-D frames (``color/``, ``depth/``,
    ``pose/``, ``intrinsic/``); unset, ``<root>/2D``.
    ``limited``: scene datasets: the data-efficient benchmark's setting for the training split,
    ``lr<P>`` (train on the scenes of ``<tasks>/scenes/<P>.txt``: lr1, lr5, lr10, lr20) or ``la<K>``
    (train on the labels of the points of ``<tasks>/points/points<K>``: la20, la50, la100, la200);
    unset, all scenes and labels. ``tasks_root``: the folder holding ``scenes/`` and ``points/``;
    unset, ``<root>/tasks`` (where Pointcept keeps them).
    ``point_cloud_range``: LiDAR sweeps only: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` of the
    ``PointClip`` transform; unset, the dataset's (Pointcept's single-dataset config); ``[]``: no clip.
    ``holdout``: object classification datasets: the fraction of each class of ``train_split`` held out as a
    validation split named ``holdout`` (``val_split: holdout`` validates on it); ``train_split``
    then leaves those objects out. ``holdout_seed`` draws them, independently of ``train.seed``, so
    every training seed sees the same split. 0: no held-out split.
    """

    dataset: str = "scannet"
    root: Optional[str] = None
    ratio: float = 1.0
    train_split: str = "train"
    val_split: str = "val"
    variant: str = "PB_T50_RS"
    way: int = 5
    shot: int = 10
    fold: int = 0
    frames_root: Optional[str] = None
    limited: Optional[str] = None
    tasks_root: Optional[str] = None
    point_cloud_range: Optional[List[float]] = None
    holdout: float = 0.0
    holdout_seed: int = 0


@dataclass
class SyntheticConfig:
    """The embedded data written when a source has no ``root``: ``scenes`` rooms per scene dataset
    (``ppt data synth-rooms``; for ``scannet-frames``, with ``frames`` RGB-D frames each, ``ppt data
    synth-frames``), ``scenes`` LiDAR sweeps per outdoor dataset of ``azimuth_steps`` firings per
    turn (unset: the sensor's; ``ppt data synth-sweeps``) or ``train_per_class``/``test_per_class``
    objects (``ppt data synth-objects``)."""

    seed: int = 0
    scenes: int = 40
    density: float = 1.0
    train_per_class: int = 64
    test_per_class: int = 16
    object_points: int = 2048
    # renders (``ppt data synth-renders``; the input clouds have ``object_points`` points)
    renders_per_class: int = 4
    render_views: int = 24
    render_gaussians: int = 16384
    # RGB-D frames of the rooms (``ppt data synth-frames``)
    frames: int = 60
    # LiDAR sweeps (``ppt data synth-sweeps``): firings per turn, unset = the sensor's
    azimuth_steps: Optional[int] = None


@dataclass
class DataConfig:
    """Data of a recipe. ``batch_size`` is per process and per micro-batch: a step sees
    ``batch_size * train.accumulate * world_size`` samples."""

    sources: Dict[str, SourceConfig] = field(default_factory=dict)  # name -> dataset; metrics are reported per name
    root: Optional[str] = None  # shorthand for the root of a recipe's only source
    cache_dir: Optional[str] = None  # synthetic data; default $PPT_CACHE or ~/.cache/ppt
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    batch_size: int = 2
    val_batch_size: int = 1
    num_workers: int = 0
    mixed_batches: bool = False  # batches mixing the sources (per-point conditions) instead of one source per step
    # scenes
    grid_size: float = 0.02
    feat_keys: List[str] = field(default_factory=lambda: ["color", "normal"])
    point_max: int = 100000  # SphereCrop of the training chain
    augment: bool = True
    # objects
    num_points: int = 2048


@dataclass
class PromptTrainingConfig:
    """Point Prompt Training (``model.name=ppt``, task ``ppt-segmentation``; docs/ppt.md):
    ``conditions``: the model's datasets (condition names such as ``ScanNet``; empty = the
    sources'); a fine-tune keeps the joint model's. ``head``: ``lang`` / ``unionized`` /
    ``decoupled``. ``adapter``: ``pdnorm`` / ``add`` / ``cross_attn`` / ``none``. ``text``: the
    ``lang`` head's provider (``minilm``, ``clip``, ``file``), ``text_model`` its model or table
    path, ``text_template`` the prompt around a class name."""

    conditions: List[str] = field(default_factory=list)
    head: str = "lang"
    adapter: str = "pdnorm"
    text: str = "minilm"
    text_model: Optional[str] = None
    text_template: str = "{}"
    zero_init: bool = True
    backbone: str = "spunet"  # or "ptv3" (its keys under model.ptv3)
    prompt_lr_scale: float = 0.1
    context_channels: int = 256
    prompt_tokens: int = 8


@dataclass
class PointMLPConfig:
    """PointMLP (``model.name`` ``pointmlp``, ``pointmlp-partseg``, ``unipre3d-object-pointmlp``;
    docs/models.md "PointMLP"): ``variant`` ``pointmlp`` (the official ``pointMLP()`` of the model)
    or ``elite`` (``pointMLPElite()``, classification only); every other key, when set, overrides
    the model's value of the argument of that name (``de_dims``, ``de_blocks``: the decoder of
    ``pointmlp-partseg`` and ``unipre3d-object-pointmlp``; ``normals``: ``pointmlp-partseg`` only)."""

    variant: str = "pointmlp"
    points: Optional[int] = None
    embed_dim: Optional[int] = None
    groups: Optional[int] = None
    res_expansion: Optional[float] = None
    activation: Optional[str] = None
    bias: Optional[bool] = None
    use_xyz: Optional[bool] = None
    normalize: Optional[str] = None
    dim_expansion: Optional[List[int]] = None
    pre_blocks: Optional[List[int]] = None
    pos_blocks: Optional[List[int]] = None
    k_neighbors: Optional[List[int]] = None
    reducers: Optional[List[int]] = None
    de_dims: Optional[List[int]] = None
    de_blocks: Optional[List[int]] = None
    normals: Optional[bool] = None


@dataclass
class PTv3Config:
    """Point Transformer V3 (``model.name=ptv3``, ``model.ppt.backbone=ptv3`` and
    ``model.name=unipre3d-scene-ptv3``): the arguments of :class:`ppt.models.PointTransformerV3`,
    Pointcept's ScanNet ``PT-v3m1`` config by default."""

    order: List[str] = field(default_factory=lambda: ["z", "z-trans", "hilbert", "hilbert-trans"])
    stride: List[int] = field(default_factory=lambda: [2, 2, 2, 2])
    enc_depths: List[int] = field(default_factory=lambda: [2, 2, 2, 6, 2])
    enc_channels: List[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    enc_num_head: List[int] = field(default_factory=lambda: [2, 4, 8, 16, 32])
    enc_patch_size: List[int] = field(default_factory=lambda: [1024] * 5)
    dec_depths: List[int] = field(default_factory=lambda: [2, 2, 2, 2])
    dec_channels: List[int] = field(default_factory=lambda: [64, 64, 128, 256])
    dec_num_head: List[int] = field(default_factory=lambda: [4, 4, 8, 16])
    dec_patch_size: List[int] = field(default_factory=lambda: [1024] * 4)
    mlp_ratio: float = 4.0
    drop_path: float = 0.3
    shuffle_orders: bool = True
    enable_flash: bool = True
    pdnorm_bn: bool = False
    pdnorm_ln: bool = False
    pdnorm_decouple: bool = True
    pdnorm_adaptive: bool = False
    pdnorm_affine: bool = True


@dataclass
class ModelConfig:
    """The network. ``name``: ``spunet``, ``ptv3`` (Point Transformer V3, its keys under ``ptv3``),
    ``object-classifier`` (Point-MAE with ``peft``, or DAPT) or
    ``point-mae-pretraining`` (the masked autoencoder), ``ppt`` (Point Prompt Training on a SpUNet;
    its keys under ``ppt``), ``unipre3d-object`` (the Point-MAE keys), ``unipre3d-scene`` (the
    SpUNet keys) or ``unipre3d-scene-ptv3`` (its keys under ``ptv3``), ``pointmlp``, ``pointmlp-partseg``
    or ``unipre3d-object-pointmlp`` (their keys under ``pointmlp``). ``weights``: a
    checkpoint loaded before training
    with :func:`ppt.models.load_weights` (``auto`` recognises ppt checkpoints, including a
    ``pointmae-pretrain`` run's, and official Point-MAE / DAPT ``.pth`` files)."""

    name: str = "spunet"
    weights: Optional[str] = None
    weights_format: str = "auto"
    # spunet
    base_channels: int = 32
    channels: List[int] = field(default_factory=lambda: [32, 64, 128, 256, 256, 128, 96, 96])
    layers: List[int] = field(default_factory=lambda: [2, 3, 4, 6, 2, 2, 2, 2])
    # object-classifier
    peft: str = "dapt"
    num_groups: int = 128
    group_size: int = 32
    depth: int = 12
    dim: int = 384
    heads: int = 6
    drop_path: Optional[float] = None
    rank: Optional[int] = None
    adapter_dropout: float = 0.2
    head_features: List[str] = field(default_factory=lambda: ["cls", "prompt_mean", "patch_max"])  # DAPT's head
    frozen_norm_stats: bool = False
    # point-mae-pretraining
    mask_ratio: float = 0.6
    decoder_depth: int = 4
    # ptv3 (also the backbone of ppt with ppt.backbone=ptv3, and of unipre3d-scene-ptv3)
    ptv3: PTv3Config = field(default_factory=PTv3Config)
    # ppt (the SpUNet keys above, or ptv3 with ppt.backbone=ptv3, set its backbone)
    ppt: PromptTrainingConfig = field(default_factory=PromptTrainingConfig)
    # pointmlp (and the PointMLP backbone of unipre3d-object-pointmlp)
    pointmlp: PointMLPConfig = field(default_factory=PointMLPConfig)


@dataclass
class ParamGroupConfig:
    """Parameters whose name matches ``pattern`` (``fnmatch``, e.g. ``*prompt*``) train with
    ``lr * lr_scale`` and, when set, their own ``weight_decay``. The first matching group wins."""

    pattern: str = "*"
    lr_scale: float = 1.0
    weight_decay: Optional[float] = None


@dataclass
class OptimConfig:
    """``name``: ``sgd`` or ``adamw``. Frozen parameters (``requires_grad=False``) are not optimised.
    ``no_decay_1d``: no weight decay on 1-d parameters (norm weights), biases and parameters whose name
    contains ``token`` (Point-MAE's rule)."""

    name: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = True
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8  # AdamW's denominator term (UniPre3D: 1e-15)
    no_decay_1d: bool = False
    param_groups: List[ParamGroupConfig] = field(default_factory=list)


@dataclass
class ScheduleConfig:
    """Step-wise learning-rate schedule over ``train.steps``. ``name``: ``onecycle`` (torch's
    OneCycleLR, cosine anneal, as Pointcept), ``cosine`` (linear warm-up over ``warmup_fraction``
    of the steps, then cosine to ``lr * min_lr_ratio``), ``step`` (the lr times ``gamma`` every
    ``step_size`` steps, torch's StepLR) or ``constant``."""

    name: str = "onecycle"
    pct_start: float = 0.05
    div_factor: float = 10.0
    final_div_factor: float = 1e4
    warmup_fraction: float = 0.0
    min_lr_ratio: float = 0.0
    step_size: int = 1000
    gamma: float = 0.1


@dataclass
class LossConfig:
    """One term of the segmentation loss (``train.loss``, tasks ``segmentation`` and
    ``ppt-segmentation``; :mod:`ppt.engine.losses`), as an entry of Pointcept's ``criteria``:
    ``name`` ``ce`` (cross-entropy; ``class_weights``: one weight per class, torch's weighted mean,
    as Pointcept's ``CrossEntropyLoss(weight=...)``) or ``lovasz`` (the Lovász-softmax loss,
    :func:`ppt.nn.lovasz_softmax`; ``classes``: ``present`` or ``all``; ``per_scene``: the mean of
    per-scene losses instead of one over the batch, the point-cloud reading of Pointcept's
    ``per_image``), scaled by ``weight`` (Pointcept's ``loss_weight``)."""

    name: str = "ce"
    weight: float = 1.0
    class_weights: Optional[List[float]] = None
    classes: str = "present"
    per_scene: bool = False


@dataclass
class TrainConfig:
    """The loop. ``steps``: optimizer steps of the run. ``amp``: ``auto`` (bf16 on a GPU, none on
    CPU), ``none``, ``bf16`` or ``fp16`` (with a gradient scaler). ``accumulate``: micro-batches per
    step. ``eval_every``/``checkpoint_every``: in steps (0: at the end only). ``grad_clip``: max
    global gradient norm (unset: no clipping). ``best_metric``: the validation metric (mean over
    sources) that picks ``best.safetensors``. ``eval_votes``: classification logits averaged over
    that many scale-and-translate passes per test cloud (Point-MAE's voting; optimistic, 1 = off).
    ``ema_decay``: keep an exponential moving average of the weights (``ema = decay * ema + (1 -
    decay) * weights`` every ``ema_every`` steps, a plain copy during the first ``ema_start``
    steps); checkpoints hold it and evaluation uses it. ``preview_every``: the task's pictures
    (UniPre3D's render grids) every that many steps (0: at the end only). ``precise_bn_batches``:
    before each evaluation, recompute the running statistics of every batch norm and PDNorm row
    from that many training batches, as one large batch of them would give
    (:mod:`ppt.engine.precise_bn`; 0: off, the momentum-averaged statistics are used). ``loss``: the
    segmentation tasks' loss, a sum of :class:`LossConfig` terms (default: cross-entropy alone, with
    ``label_smoothing``)."""

    steps: int = 1000
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    accumulate: int = 1
    grad_clip: Optional[float] = None
    label_smoothing: float = 0.0
    eval_every: int = 0
    checkpoint_every: int = 0
    log_every: int = 1
    best_metric: str = "mIoU"
    tensorboard: bool = True
    eval_votes: int = 1  # classification: logits averaged over this many scale-and-translate passes (optimistic)
    ema_decay: Optional[float] = None
    ema_every: int = 1
    ema_start: int = 0
    preview_every: int = 0
    precise_bn_batches: int = 0
    loss: List[LossConfig] = field(default_factory=lambda: [LossConfig()])


@dataclass
class UniPre3DConfig:
    """Gaussian-splatting pre-training (task ``unipre3d``, :mod:`ppt.engine.tasks.unipre3d`).
    ``views``: views per item (objects: the first is the reference view of the 2D branch; scenes:
    target frames, each with its own reference frame within ``reference_distance`` frames);
    ``image_size``: side of the rendered object images; ``frame_size``: ``[width, height]`` of the
    scene frames; ``image_encoder``: the frozen 2D branch (``conv``, ``sd-vae[:<folder>]``
    or ``none``); the Gaussian head's ``head_hidden``, ``offset_scale``
    (unset: the level's, 1.0 objects / 0.2 scenes), ``min_log_scale``/``max_log_scale`` and
    ``sh_degree``; the loss weights of object and background pixels; ``preview_objects``: rows of
    the render grid (objects or scenes). ``object_frame`` (objects): ``cameras`` (the official
    frame: the cloud centred, unscaled, in the cameras' axes) or ``unit-y-up`` (the frame of ppt's
    object datasets: the unit sphere, the stored clouds' ``y`` up; the cameras follow,
    :class:`ppt.data.NormalizeWithCameras`)."""

    views: int = 4
    image_size: int = 128
    object_frame: str = "cameras"
    frame_size: List[int] = field(default_factory=lambda: [160, 120])
    reference_distance: int = 5
    image_encoder: str = "conv"
    head_hidden: int = 128
    offset_scale: Optional[float] = None
    min_log_scale: float = -1.0
    max_log_scale: float = 20.0
    sh_degree: int = 1
    foreground_weight: float = 4.0
    background_weight: float = 1.0
    preview_objects: int = 4


@dataclass
class RecipeConfig:
    """A recipe: the task family, data, model, optimizer, schedule and loop (and the ``unipre3d``
    pre-training settings, used by that task only)."""

    task: str = "segmentation"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    unipre3d: UniPre3DConfig = field(default_factory=UniPre3DConfig)


def _valid_keys(schema: Any, path: Sequence[str]) -> tuple[str, list[str]]:
    """The deepest existing node along ``path`` and its valid keys."""
    node, walked = schema, []
    for key in path:
        if dataclasses.is_dataclass(node):
            names = {f.name: f for f in dataclasses.fields(node)}
            if key not in names:
                break
            node = getattr(node, key)
        elif isinstance(node, dict):
            if key not in node:
                break
            node = node[key]
        else:
            break
        walked.append(key)
    if dataclasses.is_dataclass(node):
        keys = [f.name for f in dataclasses.fields(node)]
    elif isinstance(node, dict):
        keys = list(node)
    else:
        keys = []
    return ".".join(walked) or "<top level>", keys


def _raise(error: OmegaConfBaseException, where: str, current: Any) -> None:
    full_key = str(getattr(error, "full_key", "") or "")
    path = [part for part in full_key.replace("[", ".").replace("]", "").split(".") if part]
    reason = str(getattr(error, "msg", error)).splitlines()[0]
    parent, keys = _valid_keys(current, path[:-1] if path else [])
    listing = f"valid keys of {parent}: {', '.join(keys)}" if keys else ""
    raise ConfigError(f"{where}: {full_key or 'config'}: {reason}" + (f"; {listing}" if listing else "")) from None


def _merge(base: DictConfig, update: Any, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, update)
    except OmegaConfBaseException as error:
        _raise(error, where, OmegaConf.to_object(base))


def _out_of_range(recipe: RecipeConfig) -> list[tuple[str, Any, str]]:
    """``(key, value, what it must be)`` of every value that cannot work, however the recipe is used.
    Names (``model.name``, ``optim.name``, ``train.amp`` ...) are checked where they are built, which the
    trainer does before it touches any data."""
    from ppt.data.scenes.collate import FEATURE_FIELDS
    from ppt.data.scenes.data_efficient import LIMITED_SETTING

    data, train, model, optim = recipe.data, recipe.train, recipe.model, recipe.optim
    checks = [
        ("train.steps", train.steps, train.steps >= 1, ">= 1"),
        ("train.accumulate", train.accumulate, train.accumulate >= 1, ">= 1"),
        ("train.log_every", train.log_every, train.log_every >= 1, ">= 1"),
        ("train.eval_every", train.eval_every, train.eval_every >= 0, ">= 0 (0: at the end only)"),
        ("train.checkpoint_every", train.checkpoint_every, train.checkpoint_every >= 0, ">= 0 (0: at the end only)"),
        ("train.preview_every", train.preview_every, train.preview_every >= 0, ">= 0 (0: at the end only)"),
        ("train.eval_votes", train.eval_votes, train.eval_votes >= 1, ">= 1"),
        ("train.ema_every", train.ema_every, train.ema_every >= 1, ">= 1"),
        ("train.ema_start", train.ema_start, train.ema_start >= 0, ">= 0"),
        ("train.precise_bn_batches", train.precise_bn_batches, train.precise_bn_batches >= 0, ">= 0 (0: off)"),
        ("train.ema_decay", train.ema_decay, train.ema_decay is None or 0 <= train.ema_decay < 1, "in [0, 1) or unset"),
        ("train.grad_clip", train.grad_clip, train.grad_clip is None or train.grad_clip > 0, "> 0 or unset"),
        ("train.label_smoothing", train.label_smoothing, 0 <= train.label_smoothing < 1, "in [0, 1)"),
        ("data.batch_size", data.batch_size, data.batch_size >= 1, ">= 1"),
        ("data.val_batch_size", data.val_batch_size, data.val_batch_size >= 1, ">= 1"),
        ("data.num_workers", data.num_workers, data.num_workers >= 0, ">= 0"),
        ("data.grid_size", data.grid_size, data.grid_size > 0, "> 0 (metres)"),
        ("data.point_max", data.point_max, data.point_max >= 1, ">= 1"),
        ("data.num_points", data.num_points, data.num_points >= 1, ">= 1"),
        ("data.feat_keys", data.feat_keys, bool(data.feat_keys) and set(data.feat_keys) <= set(FEATURE_FIELDS),
         f"a non-empty list of {', '.join(FEATURE_FIELDS)}"),
        ("optim.lr", optim.lr, optim.lr > 0, "> 0"),
        ("optim.weight_decay", optim.weight_decay, optim.weight_decay >= 0, ">= 0"),
        *((f"data.sources.{name}.ratio", source.ratio, source.ratio > 0, "> 0")
          for name, source in data.sources.items()),
        *((f"data.sources.{name}.holdout", source.holdout, 0 <= source.holdout < 1, "in [0, 1) (0: none)")
          for name, source in data.sources.items()),
        *((f"data.sources.{name}.limited", source.limited,
           source.limited is None or LIMITED_SETTING.match(source.limited) is not None,
           "lr<percent> (lr1, lr5, lr10, lr20), la<points> (la20, la50, la100, la200) or unset")
          for name, source in data.sources.items()),
        *((f"data.sources.{name}.point_cloud_range", source.point_cloud_range,
           source.point_cloud_range is None or len(source.point_cloud_range) == 0
           or (len(source.point_cloud_range) == 6
               and all(lo <= hi for lo, hi in zip(source.point_cloud_range[:3], source.point_cloud_range[3:]))),
           "[x_min, y_min, z_min, x_max, y_max, z_max] with each min <= max, [] (no clip) or unset")
          for name, source in data.sources.items()),
        ("train.loss", [term.name for term in train.loss], bool(train.loss), "a non-empty list of terms"),
        *_loss_checks(train.loss),
        ("data.synthetic.azimuth_steps", data.synthetic.azimuth_steps,
         data.synthetic.azimuth_steps is None or data.synthetic.azimuth_steps >= 1, ">= 1 or unset"),
        ("unipre3d.object_frame", recipe.unipre3d.object_frame, recipe.unipre3d.object_frame in OBJECT_FRAMES,
         " or ".join(repr(frame) for frame in OBJECT_FRAMES)),
    ]
    if model.name in SPUNET_MODELS:
        channels, layers = list(model.channels), list(model.layers)
        checks += [
            ("model.channels", channels, len(channels) == len(layers) and all(width >= 1 for width in channels),
             f"one width >= 1 per entry of model.layers ({len(layers)} entries)"),
            ("model.layers", layers, bool(layers) and len(layers) % 2 == 0 and all(count >= 1 for count in layers),
             "an even number of block counts >= 1 (encoder stages, then as many decoder stages)"),
            ("model.base_channels", model.base_channels, model.base_channels >= 1, ">= 1"),
        ]
    return [(key, value, expected) for key, value, ok, expected in checks if not ok]


def _loss_checks(terms: Sequence[LossConfig]) -> list[tuple[str, Any, bool, str]]:
    """The checks of each ``train.loss`` term: a known name, a positive weight, and only the keys
    of its kind (class weights for ``ce``; ``classes``, ``per_scene`` for ``lovasz``)."""
    from ppt.nn.losses import LOVASZ_CLASSES

    checks = []
    for i, term in enumerate(terms):
        key = f"train.loss[{i}]"
        checks += [(f"{key}.name", term.name, term.name in LOSS_NAMES, f"one of {LOSS_NAMES}"),
                   (f"{key}.weight", term.weight, term.weight > 0, "> 0")]
        if term.class_weights is not None:
            checks.append((f"{key}.class_weights", term.class_weights,
                           term.name == "ce" and bool(term.class_weights) and min(term.class_weights) >= 0
                           and max(term.class_weights) > 0,
                           "unset, or for a ce term a list of one weight >= 0 per class, not all 0"))
        checks.append((f"{key}.classes", term.classes,
                       term.classes in LOVASZ_CLASSES and (term.name == "lovasz" or term.classes == "present"),
                       f"one of {LOVASZ_CLASSES} (a lovasz term's setting)"))
        checks.append((f"{key}.per_scene", term.per_scene, term.name == "lovasz" or not term.per_scene,
                       "false for a ce term (a lovasz term's setting)"))
    return checks


def check_config(recipe: RecipeConfig, where: str = "config") -> None:
    """Raise :class:`ConfigError` naming every key of ``recipe`` whose value cannot work (an unknown
    task or best metric, no data source, a count or size out of range, unknown feature keys, SpUNet
    widths that do not match its stages). :func:`load_recipe` calls it; so does the trainer, for
    configs built in Python."""
    if recipe.task not in TASKS:
        raise ConfigError(f"{where}: task must be one of {TASKS}, got {recipe.task!r}")
    if recipe.train.best_metric not in BEST_METRICS:
        raise ConfigError(f"{where}: train.best_metric must be one of {BEST_METRICS}, got {recipe.train.best_metric!r}")
    if not recipe.data.sources:
        raise ConfigError(f"{where}: data.sources is empty; a recipe needs at least one dataset")
    if recipe.task not in LOSS_TASKS and recipe.train.loss != [LossConfig()]:
        raise ConfigError(f"{where}: train.loss applies to the tasks {LOSS_TASKS}; task {recipe.task!r} has its own "
                          "loss, so leave train.loss unset")
    bad = _out_of_range(recipe)
    if bad:
        raise ConfigError(f"{where}: " + "; ".join(f"{key} must be {expected}, got {value!r}"
                                                   for key, value, expected in bad))


def _finish(cfg: DictConfig, where: str) -> RecipeConfig:
    try:
        recipe: RecipeConfig = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:
        _raise(error, where, RecipeConfig())
    check_config(recipe, where)
    if recipe.data.root is not None:
        if len(recipe.data.sources) != 1:
            raise ConfigError(f"{where}: data.root sets the root of a recipe's only dataset, but this recipe has "
                              f"{len(recipe.data.sources)} ({', '.join(recipe.data.sources)}); set "
                              "data.sources.<name>.root instead")
        next(iter(recipe.data.sources.values())).root = recipe.data.root
    return recipe


def recipe_path(name: str) -> Path:
    """The YAML file of a shipped recipe, or ``name`` itself when it is a path to a YAML file."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return Path(name)
    path = Path(str(importlib.resources.files("ppt.recipes").joinpath(f"{name}.yaml")))
    if not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}; shipped recipes: {', '.join(list_recipes())} (or give a .yaml path)")
    return path


def list_recipes() -> list[str]:
    """Names of the recipes shipped in :mod:`ppt.recipes`."""
    folder = importlib.resources.files("ppt.recipes")
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _parse_overrides(overrides: Sequence[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"--set {item!r}: expected key=value with a dotted key, e.g. train.steps=100")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as error:
        raise ConfigError(f"--set: {error}") from None


def load_recipe(name: str | PathLike, overrides: Sequence[str] = ()) -> RecipeConfig:
    """Load a shipped recipe (by name) or a YAML file, apply ``key=value`` overrides, and return
    the typed config.

    Raises:
        ConfigError: unknown recipe, unknown key or wrong type (the message lists the valid keys).
    """
    path = recipe_path(str(name))
    try:
        content = OmegaConf.load(path)
    except Exception as error:
        raise ConfigError(f"{path}: not a readable YAML recipe ({error})") from None
    cfg = _merge(OmegaConf.structured(RecipeConfig), content, f"recipe {path}")
    cfg = _merge(cfg, _parse_overrides(overrides), "--set")
    return _finish(cfg, f"recipe {Path(path).stem}")


def config_from_dict(content: dict, where: str = "config") -> RecipeConfig:
    """A typed config from a plain dict (as stored in checkpoint metadata)."""
    return _finish(_merge(OmegaConf.structured(RecipeConfig), content, where), where)


def config_to_dict(config: RecipeConfig) -> dict:
    """Plain containers (for JSON)."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
