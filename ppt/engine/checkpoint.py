"""Training checkpoints.

A checkpoint is a ``.safetensors`` file of the model's weights whose header metadata holds one
JSON document (key ``ppt``): the config, class names per dataset, the step and metrics, and
provenance (ppt and torch versions, time; no git). The training state needed to resume
(optimizer, scheduler, gradient scaler, RNG states, step) sits next to it in a ``.state.pt`` file
of tensors and plain containers, readable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ppt.engine.metrics import strict_json

__all__ = ["CheckpointMeta", "save_checkpoint", "read_meta", "read_train_state", "state_path",
           "rng_state", "set_rng_state", "CheckpointError", "OutputError", "writable_folder"]

FORMAT = "ppt-train-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt or not a ppt training checkpoint."""


class OutputError(ValueError):
    """An output location that cannot be written: a file where a folder is needed, or a folder that
    cannot be created or written in."""


def writable_folder(folder: str | PathLike, what: str) -> Path:
    """``folder``, created with its parents, once a file has been written in it (a real write, since
    permission bits say little for root or on read-only mounts). ``what`` names it in errors (``--out``).

    Raises:
        OutputError: ``folder`` is a file, or cannot be created or written in.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OutputError(f"{what}: cannot write in {folder} ({error.strerror or error})") from None
    return folder


@dataclass(frozen=True)
class CheckpointMeta:
    config: dict
    class_names: dict[str, list[str]]
    step: int
    metrics: dict
    provenance: dict

    def to_json(self) -> str:
        return strict_json({"format": FORMAT, "version": VERSION, "config": self.config, "class_names": self.class_names,
                            "step": self.step, "metrics": self.metrics, "provenance": self.provenance})


def provenance() -> dict:
    import ppt

    return {"ppt": ppt.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def state_path(weights: str | PathLike) -> Path:
    """The training-state file that goes with a weights file (``last.safetensors`` -> ``last.state.pt``)."""
    weights = Path(weights)
    return weights.with_name(weights.name.removesuffix(".safetensors") + ".state.pt")


def _atomic(path: Path, write) -> None:
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def save_checkpoint(path: str | PathLike, model: torch.nn.Module, meta: CheckpointMeta,
                    train_state: Mapping | None = None) -> Path:
    """Write ``path`` (weights + metadata) and, given ``train_state``, its ``.state.pt``. Each file
    is written to a temporary name and renamed, so an interrupted save leaves the previous one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    _atomic(path, lambda p: save_file(tensors, str(p), metadata={"ppt": meta.to_json()}))
    if train_state is not None:
        _atomic(state_path(path), lambda p: torch.save(dict(train_state), p))
    return path


def read_meta(path: str | PathLike) -> CheckpointMeta:
    """The metadata of a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if "ppt" not in header:
        raise CheckpointError(f"{path}: a safetensors file without ppt training metadata; load bare weights with "
                              "ppt.models.load_weights instead")
    try:
        content = json.loads(header["ppt"])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: corrupt ppt metadata ({error})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise CheckpointError(f"{path}: metadata is not a {FORMAT}")
    missing = [key for key in ("config", "class_names", "step", "metrics", "provenance") if key not in content]
    if missing:
        raise CheckpointError(f"{path}: metadata lacks {', '.join(missing)}")
    return CheckpointMeta(content["config"], content["class_names"], int(content["step"]), content["metrics"],
                          content["provenance"])


def read_train_state(weights: str | PathLike) -> dict:
    """The resume state next to a checkpoint, loaded with ``weights_only=True``."""
    path = state_path(weights)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (the training state that goes with {Path(weights).name})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, bad pickle, disallowed global
        raise CheckpointError(f"{path}: cannot be read with torch.load(weights_only=True) ({error})") from None
    required = ("step", "optimizer", "scheduler", "rng")
    if not isinstance(state, dict) or any(key not in state for key in required):
        raise CheckpointError(f"{path}: not a ppt training state (needs {', '.join(required)})")
    return state


def rng_state() -> dict:
    """Every RNG the loop may draw from, as tensors and plain values."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
