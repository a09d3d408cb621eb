"""Precise batch-norm statistics (as detectron2's PreciseBN): recompute the running statistics
of every batch norm and PDNorm of a model from a number of training batches, weights untouched.

Why: running statistics are an exponential average with a small momentum (PPT's 0.01). After few
batches, or for a dataset that few batches come from (a PDNorm row of a minor dataset under a
4:2:1 sampler), they still hold much of their initial 0 and 1, and evaluation normalises with
them. Here the model runs the batches in training mode (so every norm normalises with its
batch's statistics, exactly as in training) while hooks collect each norm's input; the running
mean and variance then become those of all the batches' rows together, which equal the
statistics one large batch of them would give: the mean of all rows and their unbiased variance
(what ``torch.nn.BatchNorm1d`` stores with momentum 1). A PDNorm row only sees the rows of its own
condition; a row whose condition none of the batches holds keeps its statistics. Under
``torch.distributed`` the statistics cover the batches of every process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ppt.nn.pdnorm import PDNorm

__all__ = ["recompute_bn_statistics", "normalization_layers"]


def normalization_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The batch norms (``torch.nn`` ``_BatchNorm`` with running statistics) and PDNorms of ``model``."""
    return [(name, module) for name, module in model.named_modules()
            if (isinstance(module, _BatchNorm) and module.track_running_stats) or isinstance(module, PDNorm)]


class _RowMoments:
    """Count, mean and sum of squared deviations per (statistics row, channel), merged batch by
    batch with Chan et al.'s pairwise update (float64: no cancellation of E[x²] - E[x]²)."""

    def __init__(self, rows: int, channels: int, device: torch.device) -> None:
        self.count = torch.zeros(rows, 1, dtype=torch.float64, device=device)
        self.mean = torch.zeros(rows, channels, dtype=torch.float64, device=device)
        self.squares = torch.zeros(rows, channels, dtype=torch.float64, device=device)

    def add(self, values: Tensor, row_of_value: Tensor | None) -> None:
        """``values`` ``(M, C)``, ``row_of_value`` ``(M,)`` int64 (None: all in row 0)."""
        values = values.detach().double()
        rows = self.count.shape[0]
        if row_of_value is None:
            row_of_value = torch.zeros(values.shape[0], dtype=torch.int64, device=values.device)
        count = torch.bincount(row_of_value, minlength=rows).double()[:, None]
        total = torch.zeros_like(self.mean).index_add_(0, row_of_value, values)
        mean = total / count.clamp_min(1)
        squares = torch.zeros_like(self.squares).index_add_(0, row_of_value, (values - mean[row_of_value]) ** 2)
        self._merge(count, mean, squares)

    def _merge(self, count: Tensor, mean: Tensor, squares: Tensor) -> None:
        merged = self.count + count
        delta = mean - self.mean
        share = count / merged.clamp_min(1)
        self.squares += squares + delta ** 2 * self.count * share
        self.mean += delta * share
        self.count = merged

    def all_reduce(self) -> None:
        """Merge the moments of every process (each rank's: count, count x mean, then deviations)."""
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return
        count = self.count.clone()
        dist.all_reduce(count)
        mean = self.mean * self.count
        dist.all_reduce(mean)
        mean /= count.clamp_min(1)
        squares = self.squares + (self.mean - mean) ** 2 * self.count
        dist.all_reduce(squares)
        self.count, self.mean, self.squares = count, mean, squares


def _channels_last(x: Tensor, channels: int) -> Tensor:
    """``(N, C, *)`` batch-norm input as ``(rows, C)``."""
    return x.transpose(0, 1).reshape(channels, -1).t() if x.dim() > 2 else x


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, batches: Iterable, forward: Callable[[object], object],
                            num_batches: int) -> int:
    """Set the running statistics of ``model``'s batch norms and PDNorms to those of
    ``num_batches`` batches (all of them together, as one large batch would give).

    Args:
        model: the module whose norms are updated (its weights and everything else are left as
            they were, ``num_batches_tracked`` included; the module's mode is restored).
        batches: yields the batches (at least ``num_batches``; fewer: all of them are used).
        forward: runs ``model`` on one batch (in training mode, without gradients).
        num_batches: how many batches to use (>= 1).

    Returns:
        The number of batches used.
    """
    if num_batches < 1:
        raise ValueError(f"recompute_bn_statistics: num_batches must be >= 1, got {num_batches}")
    layers = normalization_layers(model)
    if not layers:
        return 0
    # one entry per layer on every process, met or not: the processes all-reduce the same tensors
    moments = {module: _RowMoments(module.num_conditions if isinstance(module, PDNorm) and module.decouple else 1,
                                   module.num_features, module.running_mean.device)
               for _, module in layers}

    def collect(module: nn.Module, args: tuple, kwargs: dict, output) -> None:
        x = args[0] if args else kwargs["input" if isinstance(module, _BatchNorm) else "x"]
        row_of_value = None
        if isinstance(module, PDNorm) and module.decouple:
            row_of_value = module._domain_rows(args[1] if len(args) > 1 else kwargs["domain"], x)[0]
        moments[module].add(_channels_last(x, module.num_features), row_of_value)

    tracked = {module: module.num_batches_tracked.clone() for _, module in layers}
    was_training = {module: module.training for module in model.modules()}
    handles = [module.register_forward_hook(collect, with_kwargs=True) for _, module in layers]
    used = 0
    try:
        model.train()
        for batch in batches:
            if used == num_batches:
                break
            forward(batch)
            used += 1
    finally:
        for handle in handles:
            handle.remove()
        for module, training in was_training.items():
            module.train(training)
    for _, module in layers:
        module.num_batches_tracked.copy_(tracked[module])
        moment = moments[module]
        moment.all_reduce()
        seen = moment.count[:, 0] > 0
        variance = moment.squares / (moment.count - 1).clamp_min(1)
        if isinstance(module, PDNorm):
            module.running_mean[seen] = moment.mean[seen].to(module.running_mean.dtype)
            module.running_var[seen] = variance[seen].to(module.running_var.dtype)
        elif bool(seen[0]):
            module.running_mean.copy_(moment.mean[0])
            module.running_var.copy_(variance[0])
    return used
