"""The dataset condition a PDNorm model is called with, resolved once for every model that takes one
(:class:`~ppt.models.PointPromptTraining`, :class:`~ppt.models.PointTransformerV3`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Condition", "condition_index"]

Condition = str | int | Tensor | None


def condition_index(condition: Condition, conditions: Sequence[str], rows: int, owner: str) -> int | Tensor:
    """``condition`` (a name of ``conditions``, its index, or an ``(rows,)`` int64 index per point) as an
    index or that tensor, validated; ``ValueError`` names ``owner`` and what was expected."""
    if isinstance(condition, Tensor) and condition.dim() == 0:
        condition = int(condition)
    if isinstance(condition, str):
        if condition not in conditions:
            raise ValueError(f"{owner}: unknown condition {condition!r}, expected one of {tuple(conditions)}")
        return list(conditions).index(condition)
    if isinstance(condition, int):
        if not 0 <= condition < len(conditions):
            raise ValueError(f"{owner}: condition index must be in [0, {len(conditions)}), got {condition}")
        return condition
    if not isinstance(condition, Tensor) or condition.dtype != torch.int64 or condition.shape != (rows,):
        got = f"{condition.dtype} {tuple(condition.shape)}" if isinstance(condition, Tensor) else type(condition).__name__
        raise ValueError(f"{owner}: condition must be a name, an index or an int64 tensor of shape ({rows},), got {got}")
    if condition.numel() and (int(condition.min()) < 0 or int(condition.max()) >= len(conditions)):
        raise ValueError(f"{owner}: condition ids must be in [0, {len(conditions)})")
    return condition
