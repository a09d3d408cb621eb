"""One switch over the object classifiers: full fine-tuning, linear probing, the PEFT baselines and DAPT."""

from __future__ import annotations

from typing import Sequence

from ppt.models.dapt import DAPT
from ppt.models.peft import PeftModule, PEFT_METHODS
from ppt.models.point_mae import PointMAE

__all__ = ["create_object_classifier"]


def create_object_classifier(peft: str = "dapt", *, num_classes: int = 15, num_groups: int = 128,
                             group_size: int = 32, depth: int = 12, dim: int = 384, heads: int = 6,
                             drop_path: float | None = None, rank: int | None = None, adapter_dropout: float = 0.2,
                             head_features: Sequence[str] = ("cls", "prompt_mean", "patch_max"),
                             prompt_tokens: int = 10, frozen_norm_stats: bool = False) -> PeftModule:
    """:class:`DAPT` for ``peft="dapt"``, else :class:`PointMAE` with ``peft`` (one of
    :data:`ppt.models.peft.PEFT_METHODS`), on the same transformer.

    ``drop_path`` defaults to each model's (DAPT 0.3, Point-MAE 0.1); ``rank`` is DAPT's adapter
    bottleneck (default 64), LoRA's rank (default 8) or AdaptFormer's bottleneck (default 64) and
    unused by the other methods; ``adapter_dropout`` and ``head_features`` apply to DAPT,
    ``prompt_tokens`` to VPT-deep.
    """
    if peft not in PEFT_METHODS:
        raise ValueError(f"peft must be one of {PEFT_METHODS}, got {peft!r}")
    if peft == "dapt":
        return DAPT(num_classes, num_groups, group_size, rank=rank if rank is not None else 64,
                    adapter_dropout=adapter_dropout, drop_path=0.3 if drop_path is None else drop_path,
                    head_features=head_features, depth=depth, dim=dim, heads=heads,
                    frozen_norm_stats=frozen_norm_stats)
    return PointMAE(num_classes, num_groups, group_size, depth, dim, heads, 0.1 if drop_path is None else drop_path,
                    peft=peft, peft_rank=rank if peft in ("lora", "adaptformer") else None,
                    prompt_tokens=prompt_tokens, frozen_norm_stats=frozen_norm_stats)
