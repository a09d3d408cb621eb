"""Typed builders from a recipe's sections to ppt objects: models, datasets and their transforms,
and the synthetic data a recipe uses when it names no dataset root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch import nn

from ppt.data import S3DIS, ScanNet, ScanObjectNN, SceneDataset, Structured3D
from ppt.engine.config import DataConfig, ModelConfig, SourceConfig, SyntheticConfig
from ppt.engine.distributed import barrier

__all__ = ["build_spunet", "build_object_classifier", "load_configured_weights", "MODEL_BUILDERS", "SCENE_DATASETS", "OBJECT_DATASETS",
           "cache_root", "dataset_root"]

SCENE_DATASETS: dict[str, type[SceneDataset]] = {"scannet": ScanNet, "s3dis": S3DIS, "structured3d": Structured3D}
OBJECT_DATASETS = {"scanobjectnn": ScanObjectNN}


def build_spunet(config: ModelConfig, *, num_classes: int, in_channels: int) -> nn.Module:
    from ppt.models import SpUNet

    return SpUNet(in_channels=in_channels, num_classes=num_classes, base_channels=config.base_channels,
                  channels=tuple(config.channels), layers=tuple(config.layers))


def build_object_classifier(config: ModelConfig, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    from ppt.models import create_object_classifier

    return create_object_classifier(config.peft, num_classes=num_classes, num_groups=config.num_groups,
                                    group_size=config.group_size, depth=config.depth, dim=config.dim,
                                    heads=config.heads, drop_path=config.drop_path, rank=config.rank,
                                    adapter_dropout=config.adapter_dropout,
                                    frozen_norm_stats=config.frozen_norm_stats)


MODEL_BUILDERS = {"spunet": build_spunet, "object-classifier": build_object_classifier}


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
    """Where synthetic data go: ``data.cache_dir``, else ``$PPT_CACHE``, else ``$XDG_CACHE_HOME/ppt``
    (``~/.cache/ppt``)."""
    if data.cache_dir:
        return Path(data.cache_dir).expanduser()
    if os.environ.get("PPT_CACHE"):
        return Path(os.environ["PPT_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "ppt"


def _object_flavor(variant: str) -> str:
    return "clean" if variant == "OBJ_ONLY" else "background"


def _synthetic_folder(source: SourceConfig, synthetic: SyntheticConfig, cache: Path) -> Path:
    if source.dataset in SCENE_DATASETS:
        name = f"{source.dataset}-seed{synthetic.seed}-{synthetic.scenes}scenes-density{synthetic.density:g}"
    else:
        name = (f"{source.dataset}-{_object_flavor(source.variant)}-seed{synthetic.seed}-"
                f"{synthetic.train_per_class}x{synthetic.test_per_class}-{synthetic.object_points}pts")
    return cache / "synthetic" / name


def _write_synthetic(source: SourceConfig, synthetic: SyntheticConfig, folder: Path) -> None:
    if source.dataset in SCENE_DATASETS:
        from ppt.data.rooms import write_synthetic_rooms

        write_synthetic_rooms(folder, source.dataset, synthetic.scenes, seed=synthetic.seed, density=synthetic.density)
    else:
        from ppt.data import write_synthetic_objects

        write_synthetic_objects(folder, _object_flavor(source.variant), seed=synthetic.seed,
                                train_per_class=synthetic.train_per_class, test_per_class=synthetic.test_per_class,
                                num_points=synthetic.object_points)


def dataset_root(source: SourceConfig, data: DataConfig, *, is_main: bool = True, quiet: bool = False) -> Path:
    """``source.root``, or the synthetic stand-in in the cache, written on first use (by the main
    process; the others wait for it)."""
    if source.dataset not in SCENE_DATASETS and source.dataset not in OBJECT_DATASETS:
        raise ValueError(f"data source dataset must be one of {sorted(SCENE_DATASETS) + sorted(OBJECT_DATASETS)}, "
                         f"got {source.dataset!r}")
    if source.root:
        return Path(source.root).expanduser()
    folder = _synthetic_folder(source, data.synthetic, cache_root(data))
    if is_main and not (folder / ".complete").is_file():
        if not quiet:
            print(f"writing synthetic {source.dataset} data to {folder} (first use; set data.root to use real data)",
                  flush=True)
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _write_synthetic(source, data.synthetic, partial)
        (partial / ".complete").touch()
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    barrier()
    return folder
