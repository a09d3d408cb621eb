"""Load checkpoints of this package and of the original implementations into ppt models.

``load_weights(model, checkpoint, format=...)`` reads the checkpoint safely (safetensors, or
``torch.load(weights_only=True)``), converts its keys with the format's converter and loads them.
A format is a :class:`CheckpointFormat`: how to recognise such a checkpoint (for
``format="auto"``) and how to turn it into the model's state dict. Adding a format (Point-MAE,
DAPT, ...) means writing its converter and adding it to :data:`FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["load_weights", "read_checkpoint", "LoadReport", "CheckpointFormat", "FORMATS"]

StateDict = Mapping[str, Tensor]


@dataclass(frozen=True)
class LoadReport:
    """What ``load_weights`` did: the format used, the model keys the checkpoint did not fill
    (``missing``), checkpoint keys the model has no place for (``unexpected``) and checkpoint keys
    the format leaves out on purpose (``ignored``: e.g. the decoder of a Point-MAE pre-training
    checkpoint loaded into a classifier)."""

    format: str
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    ignored: tuple[str, ...] = ()

    def __str__(self) -> str:
        def listing(keys: tuple[str, ...]) -> str:
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "") if keys else "none"

        # ignored keys are whole modules left out (a decoder): named by module, with their key counts
        modules: dict[str, list[str]] = {}
        for key in self.ignored:
            modules.setdefault(key.split(".", 1)[0], []).append(key)
        ignored = ", ".join(keys[0] if keys == [name] else f"{name}.* ({len(keys)} keys)"
                            for name, keys in modules.items()) or "none"
        return (f"loaded {self.format} weights; missing: {listing(self.missing)}; unexpected: "
                f"{listing(self.unexpected)}; ignored (not used by this model): {ignored}")


@dataclass(frozen=True)
class CheckpointFormat:
    """A checkpoint format.

    Attributes:
        name: the ``format=`` value.
        detect: True when a raw checkpoint (what :func:`read_checkpoint` returns) is of this format.
        convert: ``(raw checkpoint, model) -> (state dict, ignored keys)``: the state dict for
            ``model.load_state_dict`` and the checkpoint keys left out of it on purpose (reported
            as :attr:`LoadReport.ignored`).
    """

    name: str
    detect: Callable[[Mapping], bool]
    convert: Callable[[Mapping, nn.Module], tuple[dict[str, Tensor], tuple[str, ...]]]


def _numpy_scalar_globals() -> list:
    """What ``weights_only`` loading must admit besides tensors for checkpoints that store metrics
    as NumPy scalars (Point-MAE's part-segmentation ``best_model.pth``): NumPy's scalar
    constructor under both module names (NumPy 1.x pickles ``numpy.core``, 2.x ``numpy._core``)
    and the dtypes. Constructing these runs no code of the file's choosing."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    dtypes = {type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"}
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype, *dtypes]


def read_checkpoint(path: str | PathLike) -> Mapping:
    """The contents of a ``.safetensors`` file (a flat mapping of tensors) or of a torch pickle
    (``.pth``/``.pt``/``.ckpt``, loaded with ``weights_only=True``: tensors, NumPy scalars and plain
    containers only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own SafetensorError for corrupt files
            raise ValueError(f"{path}: not a readable safetensors file ({error})") from error
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors of every kind, including disallowed globals
        raise ValueError(f"{path}: cannot be read with torch.load(weights_only=True) ({error}); only tensors, NumPy "
                         "scalars and plain containers are accepted") from error
    if not isinstance(content, Mapping):
        raise ValueError(f"{path}: expected a mapping (a state dict or a training checkpoint), got {type(content).__name__}")
    return content


def _tensors_only(state: Mapping, where: str) -> dict[str, Tensor]:
    bad = [key for key, value in state.items() if not isinstance(value, Tensor)]
    if bad:
        raise ValueError(f"{where}: expected a state dict of tensors, but {bad[0]!r} holds a {type(state[bad[0]]).__name__}")
    return dict(state)


# ---- ppt: this package's safetensors weights (or an in-memory state dict in ppt's names)

def _convert_ppt(checkpoint: Mapping, model: nn.Module) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    return _tensors_only(checkpoint, "ppt checkpoint"), ()


# ---- pointcept: torch.save({"state_dict": ..., "epoch": ...}) of a (DDP-wrapped) segmentor

_POINTCEPT_PREFIXES = ("module.", "backbone.")


def _pointcept_state(checkpoint: Mapping) -> Mapping:
    return checkpoint["state_dict"] if isinstance(checkpoint.get("state_dict"), Mapping) else checkpoint


def _detect_pointcept(checkpoint: Mapping) -> bool:
    state = _pointcept_state(checkpoint)
    return state is not checkpoint or any(str(key).startswith(_POINTCEPT_PREFIXES) for key in state)


def _convert_pointcept(checkpoint: Mapping, model: nn.Module) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    state = _tensors_only(_pointcept_state(checkpoint), "Pointcept checkpoint")
    state = {key[len("module."):] if key.startswith("module.") else key: value for key, value in state.items()}
    convert = getattr(model, "convert_pointcept_state_dict", None)
    if convert is None:
        raise TypeError(f"{type(model).__name__} does not load Pointcept checkpoints (it has no "
                        "convert_pointcept_state_dict)")
    return convert(state), ()


# ---- point-mae / dapt: the official repositories' torch.save({"base_model": ..., ...}) checkpoints, and
# Point-MAE's part-segmentation torch.save({"model_state_dict": ..., "epoch": ..., metrics, ...})

_OFFICIAL_STATE_KEYS = ("base_model", "model_state_dict")


def _official_state(checkpoint: Mapping) -> Mapping:
    return next((checkpoint[key] for key in _OFFICIAL_STATE_KEYS if isinstance(checkpoint.get(key), Mapping)),
                checkpoint)


def _detect_official(checkpoint: Mapping, dapt: bool) -> bool:
    keys = [str(key).removeprefix("module.") for key in _official_state(checkpoint)]
    official = any(key in checkpoint for key in _OFFICIAL_STATE_KEYS) or any(
        key.startswith(("MAE_encoder.", "ACT_encoder.")) for key in keys)
    is_dapt = any("Adapter" in key or "tfts_" in key for key in keys)
    return official and is_dapt == dapt


def _official_converter(name: str) -> Callable[[Mapping, nn.Module], tuple[dict[str, Tensor], tuple[str, ...]]]:
    def convert(checkpoint: Mapping, model: nn.Module) -> tuple[dict[str, Tensor], tuple[str, ...]]:
        from ppt.models.official_weights import read_official_state_dict, state_dict_from_official
        from ppt.models.point_mae import PointMAEPretraining

        state = read_official_state_dict(checkpoint)
        # Pre-training models keep the official names; classifiers leave the decoder out.
        if isinstance(model, PointMAEPretraining):
            return state, ()
        mapped, ignored = state_dict_from_official(state, name)
        return mapped, tuple(ignored)

    return convert


# ---- pointmlp: pointMLP-pytorch's torch.save({"net": ...}) (classification) / ({"model": ...}) (part segmentation)

_POINTMLP_WRAPPERS = ("net", "model")



def _pointmlp_state(checkpoint: Mapping) -> Mapping:
    wrapped = [checkpoint[name] for name in _POINTMLP_WRAPPERS if isinstance(checkpoint.get(name), Mapping)]
    return wrapped[0] if wrapped else checkpoint


def _detect_pointmlp(checkpoint: Mapping) -> bool:
    # the groupings' affine parameters exist in PointMLP only
    keys = (str(key).removeprefix("module.") for key in _pointmlp_state(checkpoint))
    return any(key.startswith("local_grouper_list.") for key in keys)


def _convert_pointmlp(checkpoint: Mapping, model: nn.Module) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """Official keys are ppt's (the modules keep their names), less a DataParallel ``module.``.
    Ignored rather than refused: whole modules the model lacks (the decoder of a part-seg or
    UniPre3D backbone loaded into a classifier) and a head for another number of classes
    (``classifier.*`` of another shape: ModelNet40 weights fine-tuned on ScanObjectNN)."""
    state = _tensors_only(_pointmlp_state(checkpoint), "pointMLP checkpoint")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    expected = model.state_dict()
    modules = {key.split(".", 1)[0] for key in expected}
    ignored = tuple(key for key, value in state.items() if key.split(".", 1)[0] not in modules
                    or (key.startswith("classifier.") and key in expected and expected[key].shape != value.shape))
    return {key: value for key, value in state.items() if key not in ignored}, ignored


FORMATS: dict[str, CheckpointFormat] = {
    "dapt": CheckpointFormat("dapt", lambda checkpoint: _detect_official(checkpoint, dapt=True),
                             _official_converter("dapt")),
    "point-mae": CheckpointFormat("point-mae", lambda checkpoint: _detect_official(checkpoint, dapt=False),
                                  _official_converter("point-mae")),
    # before pointcept, whose detector takes any "module."-prefixed state dict
    "pointmlp": CheckpointFormat("pointmlp", _detect_pointmlp, _convert_pointmlp),
    "pointcept": CheckpointFormat("pointcept", _detect_pointcept, _convert_pointcept),
    # Last: a flat state dict nobody else claims is taken to be in ppt's own names.
    "ppt": CheckpointFormat("ppt", lambda checkpoint: True, _convert_ppt),
}


def load_weights(model: nn.Module, checkpoint: str | PathLike | StateDict, format: str = "auto", *,
                 strict: bool = False) -> LoadReport:
    """Load ``checkpoint`` into ``model`` and report what did not match.

    Args:
        model: the ppt model.
        checkpoint: a file path (``.safetensors``, or a torch pickle read with ``weights_only=True``)
            or an in-memory mapping.
        format: a key of :data:`FORMATS` (``"ppt"``, ``"pointcept"``, ``"pointmlp"``, ...) or ``"auto"``:
            ``.safetensors`` files are ``"ppt"`` (``"point-mae"`` when they hold a
            :class:`~ppt.models.PointMAEPretraining`'s weights, e.g. of ``ppt train pointmae-pretrain``),
            otherwise the first format whose detector accepts the checkpoint.
        strict: raise when any key is missing or unexpected (keys the format ignores on
            purpose are reported in ``ignored`` and allowed).

    Raises:
        ValueError: unknown format, unreadable file, a tensor whose shape differs from the
            model's (named), or a checkpoint that shares no key with the model.
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"load_weights: unknown format {format!r}; expected 'auto' or one of {sorted(FORMATS)}")
    where = str(checkpoint) if isinstance(checkpoint, (str, PathLike)) else "the given state dict"
    raw = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, PathLike)) else checkpoint
    if not isinstance(raw, Mapping):
        raise TypeError(f"load_weights: checkpoint must be a path or a mapping, got {type(raw).__name__}")
    if format == "auto":
        is_safetensors = isinstance(checkpoint, (str, PathLike)) and Path(checkpoint).suffix == ".safetensors"
        # a ppt pre-training run's weights keep Point-MAE's names, so they convert like an official checkpoint
        format = (("point-mae" if FORMATS["point-mae"].detect(raw) else "ppt") if is_safetensors
                  else next(name for name, fmt in FORMATS.items() if fmt.detect(raw)))
    try:
        state, ignored = FORMATS[format].convert(raw, model)
    except ValueError as error:
        raise ValueError(f"load_weights: {where}: {error}") from error

    expected = model.state_dict()
    mismatched = [f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
                  for key, value in state.items() if key in expected and value.shape != expected[key].shape]
    if mismatched:
        raise ValueError(f"load_weights: {where} ({format}) has tensors of the wrong shape: " + "; ".join(mismatched[:5]))
    result = model.load_state_dict(state, strict=False)
    report = LoadReport(format, tuple(result.missing_keys), tuple(result.unexpected_keys), tuple(ignored))
    loaded = set(expected) - set(report.missing)
    if expected and all(key.endswith("num_batches_tracked") for key in loaded):  # BatchNorm fills those itself
        raise ValueError(f"load_weights: {where} shares no key with {type(model).__name__} as format {format!r} "
                         f"(its keys start {list(state)[:3]}); is it another format?")
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"load_weights: {where} does not match {type(model).__name__} exactly: {report}")
    return report
