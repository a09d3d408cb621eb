"""Loading checkpoints of the official Point-MAE and DAPT code into :class:`PointMAE`, :class:`DAPT` and
:class:`PointMAEPretraining`.

The official runners save ``{"base_model": state_dict, "optimizer": ..., "epoch": ..., ...}`` with
keys prefixed ``module.`` when trained with (Distributed)DataParallel. A pre-training checkpoint
names the encoder ``MAE_encoder.*`` and also holds the decoder (``MAE_decoder.*``,
``decoder_pos_embed.*``, ``mask_token``, ``increase_dim.*``), which a classifier does not use; a
fine-tuning checkpoint names the encoder without prefix. DAPT's loader also strips the ``ACT_encoder.``
and ``transformer_k.`` prefixes of ACT and ReCon checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from typing import Literal, Mapping

from torch import Tensor, nn

from ppt.models.point_mae import PointMAEPretraining

__all__ = ["OfficialWeightsReport", "read_official_state_dict", "state_dict_from_official", "load_official_weights"]

_PRETRAINING_ONLY = ("MAE_decoder.", "decoder_pos_embed.", "mask_token", "increase_dim.")
_ENCODER_PREFIXES = {
    "point-mae": ("MAE_encoder.", "base_model."),
    "dapt": ("MAE_encoder.", "ACT_encoder.", "transformer_k.", "base_model."),
}


@dataclass(frozen=True)
class OfficialWeightsReport:
    """Keys of the model the checkpoint did not provide (``missing``), keys of the checkpoint the model
    does not have (``unexpected``, after mapping) and pre-training keys left out on purpose (``ignored``)."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def read_official_state_dict(checkpoint: str | PathLike | Mapping[str, object]) -> dict[str, Tensor]:
    """The model weights of an official checkpoint: a ``.pth`` path (read with
    :func:`ppt.models.weights.read_checkpoint`: ``weights_only``, NumPy scalars admitted) or a loaded
    mapping; takes ``base_model`` (``model_state_dict`` of Point-MAE's part segmentation, or
    ``model``) when present and strips the ``module.`` prefix of data-parallel training."""
    source = "checkpoint mapping"
    if not isinstance(checkpoint, Mapping):
        from ppt.models.weights import read_checkpoint

        source = str(checkpoint)
        checkpoint = read_checkpoint(checkpoint)
    for key in ("base_model", "model_state_dict", "model"):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a "
                             "state dict or a dict holding one under 'base_model'")
        state[key.removeprefix("module.")] = value
    return state


def state_dict_from_official(state: Mapping[str, Tensor], format: Literal["point-mae", "dapt"] = "point-mae"
                             ) -> tuple[dict[str, Tensor], list[str]]:
    """Map an official state dict (``module.`` already stripped) to the classifiers' keys.

    Returns the mapped state dict and the pre-training-only keys left out.
    """
    if format not in _ENCODER_PREFIXES:
        raise ValueError(f"format must be one of {sorted(_ENCODER_PREFIXES)}, got {format!r}")
    mapped, ignored = {}, []
    for key, value in state.items():
        if key.startswith(_PRETRAINING_ONLY):
            ignored.append(key)
            continue
        for prefix in _ENCODER_PREFIXES[format]:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        mapped[key] = value
    return mapped, ignored


def load_official_weights(model: nn.Module, checkpoint: str | PathLike | Mapping[str, object],
                          format: Literal["point-mae", "dapt"] = "point-mae") -> OfficialWeightsReport:
    """Load an official Point-MAE or DAPT checkpoint into ``model`` by key (not strict) and report.

    A :class:`PointMAEPretraining` model takes the checkpoint's keys as they are (resuming
    pre-training); classifiers take them through :func:`state_dict_from_official`.

    Raises:
        ValueError: a key both have holds a tensor of another shape (e.g. a head for another number of classes).
    """
    state = read_official_state_dict(checkpoint)
    if isinstance(model, PointMAEPretraining):
        mapped, ignored = state, []
    else:
        mapped, ignored = state_dict_from_official(state, format)
    own = model.state_dict()
    mismatched = [f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
                  for key, value in mapped.items() if key in own and own[key].shape != value.shape]
    if mismatched:
        raise ValueError("checkpoint tensors do not fit the model: " + "; ".join(mismatched))
    result = model.load_state_dict(mapped, strict=False)
    return OfficialWeightsReport(missing=list(result.missing_keys), unexpected=list(result.unexpected_keys),
                                 ignored=ignored)
