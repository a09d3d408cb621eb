"""Typed builders from a recipe's sections to ppt objects: models, datasets and their transforms,
and the synthetic data a recipe uses when it names no dataset root."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from torch import nn

from ppt._cache import default_cache_root
from ppt.data import (S3DIS, NuScenes, ScanNet, ScanNet200, SceneDataset, SemanticKITTI, Structured3D, SweepDataset,
                      Waymo)
from ppt.engine.config import DataConfig, ModelConfig, SourceConfig, SyntheticConfig
from ppt.engine.distributed import barrier
from ppt.engine.object_data import OBJECT_DATASETS, synthetic_object_name, write_synthetic_object_data

__all__ = ["build_spunet", "build_ptv3", "ptv3_arguments", "build_object_classifier", "build_pointmlp", "build_point_mae_pretraining",
           "build_point_mae_partseg", "build_pointmlp_partseg",
           "load_configured_weights", "MODEL_BUILDERS",
           "SCENE_DATASETS", "SWEEP_DATASETS", "OBJECT_DATASETS", "cache_root", "dataset_root", "write_once"]

SCENE_DATASETS: dict[str, type[SceneDataset]] = {"scannet": ScanNet, "s3dis": S3DIS, "structured3d": Structured3D,
                                                  "scannet200": ScanNet200}
SWEEP_DATASETS: dict[str, type[SweepDataset]] = {"semantickitti": SemanticKITTI, "nuscenes": NuScenes, "waymo": Waymo}


def build_spunet(config: ModelConfig, *, num_classes: int, in_channels: int) -> nn.Module:
    from ppt.models import SpUNet

    return SpUNet(in_channels=in_channels, num_classes=num_classes, base_channels=config.base_channels,
                  channels=tuple(config.channels), layers=tuple(config.layers))


def build_ptv3(config: ModelConfig, *, num_classes: int, in_channels: int) -> nn.Module:
    from ppt.models import PointTransformerV3

    return PointTransformerV3(in_channels=in_channels, num_classes=num_classes, **ptv3_arguments(config))


def ptv3_arguments(config: ModelConfig) -> dict:
    """The recipe's ``model.ptv3`` section as :class:`ppt.models.PointTransformerV3` arguments."""
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in dataclasses.asdict(config.ptv3).items()}


def build_object_classifier(config: ModelConfig, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    from ppt.models import create_object_classifier

    return create_object_classifier(config.peft, num_classes=num_classes, num_groups=config.num_groups,
                                    group_size=config.group_size, depth=config.depth, dim=config.dim,
                                    heads=config.heads, drop_path=config.drop_path, rank=config.rank,
                                    adapter_dropout=config.adapter_dropout, head_features=tuple(config.head_features),
                                    frozen_norm_stats=config.frozen_norm_stats)


def build_point_mae_pretraining(config: ModelConfig, *, num_classes: int = 0, in_channels: int = 3) -> nn.Module:
    from ppt.models import PointMAEPretraining

    return PointMAEPretraining(num_groups=config.num_groups, group_size=config.group_size, depth=config.depth,
                               dim=config.dim, heads=config.heads,
                               drop_path=0.1 if config.drop_path is None else config.drop_path,
                               mask_ratio=config.mask_ratio, decoder_depth=config.decoder_depth,
                               decoder_heads=config.heads)


def build_point_mae_partseg(config: ModelConfig, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    from ppt.models import PointMAEPartSeg

    return PointMAEPartSeg(num_classes, trans_dim=config.dim, depth=config.depth,
                           drop_path_rate=0.1 if config.drop_path is None else config.drop_path, num_heads=config.heads,
                           group_size=config.group_size, num_group=config.num_groups, peft=config.peft,
                           peft_rank=config.rank if config.peft in ("lora", "adaptformer", "dapt") else None,
                           adapter_dropout=config.adapter_dropout, frozen_norm_stats=config.frozen_norm_stats)


POINTMLP_VARIANTS = ("pointmlp", "elite")
DECODER_SETTINGS = ("de_dims", "de_blocks")


def pointmlp_settings(config: ModelConfig, model: str, allowed: tuple[str, ...] = ()) -> dict:
    """The ``model.pointmlp`` keys that are set, as arguments of the PointMLP model of ``model.name``
    ``model``: the encoder's, and of the others only those in ``allowed``."""
    settings = {name: getattr(config.pointmlp, name) for name in config.pointmlp.__dataclass_fields__
                if name != "variant" and getattr(config.pointmlp, name) is not None}
    refused = [name for name in settings if name in (*DECODER_SETTINGS, "normals") and name not in allowed]
    if refused:
        raise ValueError(f"model.pointmlp.{refused[0]} is not a setting of {model} (it takes the encoder's settings"
                         f"{' and ' + ', '.join(allowed) if allowed else ''})")
    return {name: tuple(value) if isinstance(value, list) else value for name, value in settings.items()}


def build_pointmlp(config: ModelConfig, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    from ppt.models import PointMLP, pointmlp_elite

    variant = config.pointmlp.variant
    if variant not in POINTMLP_VARIANTS:
        raise ValueError(f"model.pointmlp.variant must be one of {POINTMLP_VARIANTS}, got {variant!r}")
    return (PointMLP if variant == "pointmlp" else pointmlp_elite)(num_classes, **pointmlp_settings(config, "pointmlp"))


def build_pointmlp_partseg(config: ModelConfig, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    from ppt.models import PointMLPPartSeg

    if config.pointmlp.variant != "pointmlp":
        raise ValueError(f"pointmlp-partseg is the official part-segmentation PointMLP (model.pointmlp.variant "
                         f"'pointmlp'), got {config.pointmlp.variant!r}")
    return PointMLPPartSeg(num_classes, **pointmlp_settings(config, "pointmlp-partseg", (*DECODER_SETTINGS, "normals")))


MODEL_BUILDERS = {"spunet": build_spunet, "ptv3": build_ptv3, "object-classifier": build_object_classifier,
                  "point-mae-pretraining": build_point_mae_pretraining, "point-mae-partseg": build_point_mae_partseg,
                  "pointmlp": build_pointmlp, "pointmlp-partseg": build_pointmlp_partseg}


def build_model(config: ModelConfig, *, num_classes: int, in_channels: int) -> nn.Module:
    """The model a recipe names, with its pre-trained ``weights`` loaded when given."""
    if config.name not in MODEL_BUILDERS:
        raise ValueError(f"model.name must be one of {sorted(MODEL_BUILDERS)}, got {config.name!r}")
    return load_configured_weights(MODEL_BUILDERS[config.name](config, num_classes=num_classes, in_channels=in_channels),
                                   config)


def load_configured_weights(model: nn.Module, config: ModelConfig) -> nn.Module:
    """``model`` with ``config.weights`` loaded (in ``config.weights_format``) when set."""
    if config.weights:
        from ppt.models import load_weights

        print(load_weights(model, config.weights, format=config.weights_format))
    return model


def cache_root(data: DataConfig) -> Path:
    """Where synthetic data (and text tables, under ``text/``) go: ``data.cache_dir``, else
    ``$PPT_CACHE``, else ``$XDG_CACHE_HOME/ppt`` (``~/.cache/ppt``)."""
    return Path(data.cache_dir).expanduser() if data.cache_dir else default_cache_root()


# The room flavor that stands in for each scene dataset (ScanNet200 is ScanNet's second labelling).
_ROOM_FLAVORS = {"scannet": "scannet", "scannet200": "scannet", "s3dis": "s3dis", "structured3d": "structured3d"}


def _synthetic_folder(source: SourceConfig, synthetic: SyntheticConfig, cache: Path) -> Path:
    if source.dataset in SCENE_DATASETS:
        name = f"{source.dataset}-seed{synthetic.seed}-{synthetic.scenes}scenes-density{synthetic.density:g}"
    elif source.dataset in SWEEP_DATASETS:
        steps = synthetic.azimuth_steps or "default"
        name = f"{source.dataset}-seed{synthetic.seed}-{synthetic.scenes}sweeps-azimuth{steps}"
    else:
        name = synthetic_object_name(source, synthetic)
    return cache / "synthetic" / name


def _write_synthetic(source: SourceConfig, synthetic: SyntheticConfig, folder: Path) -> None:
    if source.dataset in SCENE_DATASETS:
        from ppt.data.scenes.rooms import write_synthetic_rooms

        write_synthetic_rooms(folder, _ROOM_FLAVORS[source.dataset], synthetic.scenes, seed=synthetic.seed,
                              density=synthetic.density)
    elif source.dataset in SWEEP_DATASETS:
        from ppt.data.sweeps import write_synthetic_sweeps

        write_synthetic_sweeps(folder, source.dataset, synthetic.scenes, seed=synthetic.seed,
                               azimuth_steps=synthetic.azimuth_steps)
    else:
        write_synthetic_object_data(source, synthetic, folder)


def dataset_root(source: SourceConfig, data: DataConfig, *, is_main: bool = True, quiet: bool = False) -> Path:
    """``source.root``, or the synthetic stand-in in the cache, written on first use (by the main
    process; the others wait for it)."""
    known = {**SCENE_DATASETS, **SWEEP_DATASETS, **OBJECT_DATASETS}
    if source.dataset not in known:
        raise ValueError(f"data source dataset must be one of {sorted(known)}, got {source.dataset!r}")
    if source.root:
        return Path(source.root).expanduser()
    return write_once(_synthetic_folder(source, data.synthetic, cache_root(data)), source.dataset,
                      lambda folder: _write_synthetic(source, data.synthetic, folder), is_main=is_main, quiet=quiet)


def write_once(folder: Path, name: str, write: Callable[[Path], object], *, is_main: bool = True,
               quiet: bool = False) -> Path:
    """``folder`` of synthetic data, written by ``write`` on first use (into a temporary folder, then
    renamed, so an interrupted write is redone) by the main process; the others wait for it. Independent
    runs sharing the cache (experiments start several at once) take turns through a lock file beside
    ``folder``: one writes, the others wait and find it complete."""
    if is_main and not (folder / ".complete").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.with_name(folder.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
            if not (folder / ".complete").is_file():
                if not quiet:
                    print(f"writing synthetic {name} data to {folder} (first use; set data.root to use real data)",
                          flush=True)
                partial = folder.with_name(folder.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                write(partial)
                (partial / ".complete").touch()
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(partial, folder)
    barrier()
    return folder
