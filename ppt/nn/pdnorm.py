"""Prompt-driven normalization (PDNorm) of Point Prompt Training (Wu et al., CVPR 2024).

Every condition (source dataset) has its own batch-norm statistics and affine; an adaptive
modulation turns the condition's context (prompt) into a per-channel ``(shift, scale)`` applied
as ``x̂ (1 + scale) + shift``. Unlike Pointcept's ``PDBatchNorm`` (a list of ``BatchNorm1d``, one
condition per batch) a batch may mix conditions: ``domain`` can be a per-point tensor, and all
conditions are normalized by one :func:`ppt.ops.segment_batch_norm` call, with the modulation
folded into its per-segment affine.

State-dict keys (``C`` channels, ``S`` conditions) and their Pointcept ``PDBatchNorm`` sources,
converted automatically by ``load_state_dict``:

==============================  =======================================================
ppt ``PDNorm``                   Pointcept ``PDBatchNorm``
==============================  =======================================================
``weight[i]``  (S, C)           ``bns.{i}.weight``  (``bn.weight`` when decouple=False)
``bias[i]``  (S, C)             ``bns.{i}.bias``  (``bn.bias``)
``running_mean[i]``  (S, C)     ``bns.{i}.running_mean``  (``bn.running_mean``)
``running_var[i]``  (S, C)      ``bns.{i}.running_var``  (``bn.running_var``)
``num_batches_tracked[i]`` (S,) ``bns.{i}.num_batches_tracked``  (``bn.num_batches_tracked``)
``modulation.1.weight/bias``    ``modulation.1.weight/bias`` (same layout: SiLU, Linear)
==============================  =======================================================

With ``decouple=False`` the tables have one row (``S = 1``) shared by every condition.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ppt.ops._args import as_fraction, as_int, as_real
from ppt.ops.norm import segment_batch_norm

__all__ = ["PDNorm", "pointcept_to_ppt_state_dict"]

_TABLES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class PDNorm(nn.Module):
    """Per-condition batch norm with prompt-driven (adaptive) modulation.

    Args:
        num_features: channels ``C`` of the ``(N, C)`` input.
        conditions: names of the conditions (datasets), e.g. ``("ScanNet", "S3DIS", "Structured3D")``.
        context_channels: width of a condition's context vector (the modulation's input).
        decouple: separate statistics and affine per condition (else one shared batch norm).
        adaptive: add the modulation ``SiLU -> Linear(context_channels, 2C)`` giving (shift, scale).
        affine: learnable per-condition weight and bias of the batch norm.
        eps, momentum: as in ``torch.nn.BatchNorm1d`` (PPT uses 1e-3 and 0.01).
        zero_init: zero the modulation's Linear so that training starts from plain batch norm.
        sync: normalize with the statistics of the whole process group when ``torch.distributed``
            is initialised (like ``torch.nn.SyncBatchNorm``).
        process_group: the group to synchronise over (default: the world).
    """

    def __init__(
        self,
        num_features: int,
        conditions: Sequence[str],
        context_channels: int = 256,
        decouple: bool = True,
        adaptive: bool = True,
        affine: bool = True,
        eps: float = 1e-3,
        momentum: float = 0.01,
        zero_init: bool = True,
        *,
        sync: bool = False,
        process_group=None,
    ) -> None:
        super().__init__()
        num_features = as_int(num_features, "num_features", "PDNorm", minimum=1)
        if isinstance(conditions, str) or len(conditions) == 0:
            raise ValueError(f"PDNorm: conditions must be a non-empty sequence of names, got {conditions!r}")
        self.num_features = num_features
        self.conditions = tuple(conditions)
        self.context_channels = as_int(context_channels, "context_channels", "PDNorm", minimum=1)
        self.decouple = decouple
        self.adaptive = adaptive
        self.affine = affine
        self.eps = as_real(eps, "eps", "PDNorm", positive=True)
        self.momentum = as_fraction(momentum, "momentum", "PDNorm")
        self.sync = sync
        self.process_group = process_group
        rows = len(self.conditions) if decouple else 1
        if affine:
            self.weight = nn.Parameter(torch.ones(rows, num_features))
            self.bias = nn.Parameter(torch.zeros(rows, num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(rows, num_features))
        self.register_buffer("running_var", torch.ones(rows, num_features))
        self.register_buffer("num_batches_tracked", torch.zeros(rows, dtype=torch.long))
        if adaptive:
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(context_channels, 2 * num_features))
            if zero_init:
                nn.init.zeros_(self.modulation[1].weight)
                nn.init.zeros_(self.modulation[1].bias)
        else:
            self.modulation = None

    @property
    def num_conditions(self) -> int:
        return len(self.conditions)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, conditions={self.conditions}, context_channels={self.context_channels}, "
                f"decouple={self.decouple}, adaptive={self.adaptive}, affine={self.affine}, eps={self.eps}, "
                f"momentum={self.momentum}, sync={self.sync}")

    def _condition_index(self, domain: int | str) -> int:
        if isinstance(domain, str):
            if domain not in self.conditions:
                raise ValueError(f"PDNorm: unknown condition {domain!r}, expected one of {self.conditions}")
            return self.conditions.index(domain)
        index = int(domain)
        if not 0 <= index < self.num_conditions:
            raise ValueError(f"PDNorm: domain must be in [0, {self.num_conditions}), got {index}")
        return index

    def _domain_rows(self, domain, x: Tensor) -> tuple[Tensor, int | None]:
        """(per-row condition ids, the single condition when ``domain`` names one)."""
        if isinstance(domain, Tensor) and domain.dim() == 0:
            domain = int(domain)  # a scalar tensor names one condition, like an int
        if isinstance(domain, Tensor):
            if domain.dtype != torch.int64 or domain.shape != (x.shape[0],):
                raise ValueError(f"PDNorm: a domain tensor must be int64 of shape (N,) = ({x.shape[0]},), got "
                                 f"{domain.dtype} of shape {tuple(domain.shape)}")
            return domain, None
        index = self._condition_index(domain)
        return torch.full((x.shape[0],), index, dtype=torch.int64, device=x.device), index

    def _modulation(self, context: Tensor | None, single: int | None) -> tuple[Tensor, Tensor] | None:
        """(shift, scale) of shape (num_conditions, C), or None without adaptive modulation."""
        if self.modulation is None:
            return None
        if context is None:
            raise ValueError("PDNorm: adaptive=True needs the conditions' context, got context=None")
        rows_ok = context.shape[0] == self.num_conditions or (single is not None and context.shape[0] == 1)
        if context.dim() != 2 or context.shape[1] != self.context_channels or not rows_ok:
            expected = f"({self.num_conditions}, {self.context_channels})"
            if single is not None:
                expected += f" or (1, {self.context_channels})"
            raise ValueError(f"PDNorm: context must have shape {expected}, got {tuple(context.shape)}")
        shift, scale = self.modulation(context).chunk(2, dim=1)
        return shift.expand(self.num_conditions, -1), scale.expand(self.num_conditions, -1)

    @torch.no_grad()
    def _count_batch(self, domain_rows: Tensor, single: int | None) -> None:
        """BatchNorm1d's num_batches_tracked, per statistics row present in the batch."""
        if not self.decouple or single is not None:
            self.num_batches_tracked[0 if not self.decouple else single] += 1
        else:
            present = torch.bincount(domain_rows, minlength=self.num_conditions) > 0
            self.num_batches_tracked += present.to(self.num_batches_tracked.dtype)

    def forward(self, x: Tensor, domain: int | str | Tensor, context: Tensor | None = None) -> Tensor:
        """Normalize ``x`` ``(N, C)`` by condition.

        Args:
            x: ``(N, C)`` features.
            domain: the condition of the whole batch (index or name), or ``(N,)`` int64 per point.
            context: ``(num_conditions, context_channels)`` prompts, or ``(1, context_channels)``
                when ``domain`` names a single condition; required when ``adaptive``.
        """
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"PDNorm: x must have shape (N, {self.num_features}), got {tuple(x.shape)}")
        domain_rows, single = self._domain_rows(domain, x)
        modulation = self._modulation(context, single)
        common = dict(training=self.training, momentum=self.momentum, eps=self.eps, sync=self.sync,
                      process_group=self.process_group)
        if not self.decouple:
            # One shared statistics row; the per-condition modulation is applied per point.
            y = segment_batch_norm(x, torch.zeros_like(domain_rows), 1, self.running_mean, self.running_var,
                                   self.weight, self.bias, **common)
            if modulation is not None:
                shift, scale = modulation
                y = y * (1 + scale[domain_rows]).to(y.dtype) + shift[domain_rows].to(y.dtype)
        else:
            weight, bias = self.weight, self.bias
            if modulation is not None:
                # (x̂ w + b)(1 + scale) + shift == x̂ [w (1 + scale)] + [b (1 + scale) + shift]
                shift, scale = modulation
                gain = 1 + scale
                weight = gain if weight is None else weight * gain
                bias = shift if bias is None else bias * gain + shift
            y = segment_batch_norm(x, domain_rows, self.num_conditions, self.running_mean, self.running_var,
                                   weight, bias, **common)
        if self.training and x.shape[0] > 0:  # after the op validated the domain ids
            self._count_batch(domain_rows, single)
        return y

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        converted = pointcept_to_ppt_state_dict(state_dict, prefix, self.num_conditions if self.decouple else None)
        if converted is not state_dict:
            state_dict.clear()
            state_dict.update(converted)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


def pointcept_to_ppt_state_dict(state_dict: dict, prefix: str = "", num_conditions: int | None = None) -> dict:
    """Rename Pointcept ``PDBatchNorm`` keys under ``prefix`` to :class:`PDNorm` keys.

    ``bns.{i}.<name>`` rows are stacked into ``<name>`` ``(num_conditions, ...)`` tables
    (``num_conditions`` rows are required); ``bn.<name>`` (decouple=False) becomes a one-row
    table; every other key is kept. Returns ``state_dict`` itself when it has no Pointcept keys.
    """
    decoupled = {name: {} for name in _TABLES}
    shared = {}
    for key in state_dict:
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix):].split(".")
        if len(parts) == 3 and parts[0] == "bns" and parts[1].isdigit() and parts[2] in _TABLES:
            decoupled[parts[2]][int(parts[1])] = key
        elif len(parts) == 2 and parts[0] == "bn" and parts[1] in _TABLES:
            shared[parts[1]] = key
    if not shared and not any(decoupled.values()):
        return state_dict
    converted = {k: v for k, v in state_dict.items()
                 if k not in shared.values() and all(k not in rows.values() for rows in decoupled.values())}
    for name, rows in decoupled.items():
        if not rows:
            continue
        if num_conditions is None or sorted(rows) != list(range(num_conditions)):
            raise ValueError(f"PDNorm: Pointcept keys {prefix}bns.*.{name} cover conditions {sorted(rows)}, "
                             f"expected 0..{(num_conditions or 0) - 1} of a decoupled PDNorm")
        converted[prefix + name] = torch.stack([state_dict[rows[i]] for i in range(num_conditions)])
    for name, key in shared.items():
        converted[prefix + name] = state_dict[key].unsqueeze(0)
    return converted
