"""Segmented (per-dataset) batch norm: one fused pass per statistic for batches that mix datasets.

``segment_batch_norm`` equals ``F.batch_norm`` applied separately to the rows of every segment,
each with its own statistics, running buffers and affine row. It is composed of four kernels
(``csrc/norm``) so that a distributed all-reduce can sit between computing statistics and using
them, exactly where ``torch.nn.SyncBatchNorm`` puts it:

forward   ``segment_bn_stats`` (count, mean, M2)  -> [all-reduce] -> ``segment_bn_apply``
backward  ``segment_bn_backward_reduce`` (sums of dy, dy·x̂) -> [all-reduce] -> ``segment_bn_backward``
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from ppt.ops._args import as_bool, as_fraction, as_int, as_real
from ppt.ops._autograd import register_not_differentiable

__all__ = ["segment_batch_norm"]


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Statistics are accumulated and stored in float32 for half inputs, float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _sync_group(sync: bool, process_group):
    """The group to all-reduce over, or None when statistics stay local."""
    if not sync or not dist.is_available() or not dist.is_initialized():
        return None
    group = process_group if process_group is not None else dist.group.WORLD
    return group if dist.get_world_size(group) > 1 else None


def _all_reduce_moments(count: Tensor, mean: Tensor, m2: Tensor, group) -> tuple[Tensor, Tensor, Tensor]:
    """Global (count, mean, M2) per (segment, channel) from every rank's local moments.

    Two all-reduces instead of one of (count, sum, sum of squares): the first gives the global
    mean, the second sums each rank's M2 taken about that global mean
    (``M2_r + n_r (mean_r - mean)^2``), which avoids the cancellation of ``E[x^2] - E[x]^2``.
    """
    counts = count.to(mean.dtype)[:, None]
    totals = torch.cat([counts, counts * mean], dim=1)
    dist.all_reduce(totals, group=group)
    global_count = totals[:, :1]
    global_mean = totals[:, 1:] / global_count.clamp_min(1)
    spread = m2 + counts * (mean - global_mean).square()
    dist.all_reduce(spread, group=group)
    return global_count[:, 0].round().to(torch.int64), global_mean, spread


def _check_table(name: str, table: Tensor | None, num_segments: int, x: Tensor) -> None:
    if table is None:
        return
    channels = x.shape[1]
    if not isinstance(table, Tensor) or not table.is_floating_point():
        raise TypeError(f"segment_batch_norm: {name} must be a floating-point tensor, got {type(table).__name__}"
                        + (f" of dtype {table.dtype}" if isinstance(table, Tensor) else ""))
    if tuple(table.shape) != (num_segments, channels):
        raise ValueError(f"segment_batch_norm: {name} must have shape (num_segments, C) = "
                         f"({num_segments}, {channels}), got {tuple(table.shape)}")
    if table.device != x.device:
        raise ValueError(f"segment_batch_norm: {name} must be on x's device {x.device}, got {table.device}")


def _segment_sum(values: Tensor, segment: Tensor, num_segments: int) -> Tensor:
    return values.new_zeros((num_segments, values.shape[1])).index_add(0, segment, values)


def _differentiable_backward(grad_out, x, segment, mean, invstd, count, weight, eps):
    """The gradients of the kernel backward as torch ops, so that autograd can differentiate them
    again (create_graph=True). In training the statistics are recomputed from ``x`` here: there
    they are functions of ``x``, and their derivatives enter the second-order terms."""
    acc = mean.dtype
    num_segments = mean.shape[0]
    g, xa = grad_out.to(acc), x.to(acc)
    scale = invstd
    if count is not None:
        rows = count.clamp_min(1).to(acc)[:, None]
        mean = _segment_sum(xa, segment, num_segments) / rows
        centred = xa - mean[segment]
        scale = torch.rsqrt(_segment_sum(centred.square(), segment, num_segments) / rows + eps)
    x_hat = (xa - mean[segment]) * scale[segment]
    sum_dy = _segment_sum(g, segment, num_segments)
    sum_dy_xhat = _segment_sum(g * x_hat, segment, num_segments)
    dy = g if count is None else g - (sum_dy / rows)[segment] - x_hat * (sum_dy_xhat / rows)[segment]
    grad_x = dy * scale[segment]
    if weight is not None:
        grad_x = grad_x * weight[segment]
    return grad_x.to(x.dtype), sum_dy_xhat, sum_dy


class _SegmentBatchNormFunction(torch.autograd.Function):
    """Normalize with given statistics; the backward treats them as functions of x in training."""

    @staticmethod
    def forward(ctx, x, segment, mean, invstd, count, weight, bias, group, eps):
        ctx.save_for_backward(x, segment, mean, invstd, count, weight)
        ctx.group = group
        ctx.eps = eps
        return torch.ops.ppt.segment_bn_apply.default(x, segment, mean, invstd, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x, segment, mean, invstd, count, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad[0], ctx.needs_input_grad[5], ctx.needs_input_grad[6]
        training = count is not None
        if torch.is_grad_enabled():  # create_graph=True: a backward that is itself differentiable
            if training and ctx.group is not None:
                raise RuntimeError("segment_batch_norm: double backward (create_graph=True) is not implemented with "
                                   "sync=True across processes (the all-reduced statistics are not differentiable)")
            grad_x, grad_weight, grad_bias = _differentiable_backward(grad_out, x, segment, mean, invstd, count,
                                                                      weight, ctx.eps)
            return (grad_x if need_x else None, None, None, None, None, grad_weight if need_weight else None,
                    grad_bias if need_bias else None, None, None)
        grad_x = grad_weight = grad_bias = None
        if (training and need_x) or need_weight or need_bias:
            sum_dy, sum_dy_xhat = torch.ops.ppt.segment_bn_backward_reduce.default(grad_out, x, segment, mean, invstd)
            # Affine grads are local, like SyncBatchNorm: DDP averages parameter grads itself.
            grad_weight = sum_dy_xhat if need_weight else None
            grad_bias = sum_dy if need_bias else None
        if need_x:
            if training and ctx.group is not None:
                sums = torch.stack([sum_dy, sum_dy_xhat])
                dist.all_reduce(sums, group=ctx.group)
                sum_dy, sum_dy_xhat = sums[0], sums[1]
            grad_x = torch.ops.ppt.segment_bn_backward.default(
                grad_out, x, segment, mean, invstd, weight,
                count if training else None, sum_dy if training else None, sum_dy_xhat if training else None)
        return grad_x, None, None, None, None, grad_weight, grad_bias, None, None


def segment_batch_norm(
    x: Tensor,
    segment: Tensor,
    num_segments: int,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    sync: bool = False,
    process_group=None,
) -> Tensor:
    """Batch norm with separate statistics and affine per segment (e.g. per source dataset).

    Equals ``F.batch_norm(x[segment == s], running_mean[s], running_var[s], weight[s], bias[s],
    training, momentum, eps)`` for every ``s``, scattered back to the rows of ``s``, in one pass
    per statistic regardless of how the segments interleave.

    Args:
        x: ``(N, C)`` float16/bfloat16/float32/float64.
        segment: ``(N,)`` int64 segment of every row, in ``[0, num_segments)``.
        num_segments: ``S`` > 0.
        running_mean, running_var: ``(S, C)`` floating buffers (usually float32; float64 for
            float64 inputs), updated in place in training as torch BatchNorm does
            (``r = (1 - momentum) r + momentum * batch_stat``, unbiased batch variance), only for
            segments with rows in the batch. Required in eval, where they are the statistics.
        weight, bias: ``(S, C)`` per-segment affine, or ``None``.
        training: use batch statistics (and update the running ones) instead of the running ones.
        momentum: weight of the batch statistic in the running update, in [0, 1].
        eps: added to the variance, > 0.
        sync: when ``torch.distributed`` is initialised, normalize with the statistics of the
            whole process group (forward and backward), like ``torch.nn.SyncBatchNorm``.
        process_group: the group to synchronise over (default: the world).

    Returns:
        ``(N, C)`` tensor of ``x``'s dtype. Statistics are accumulated in float32 for half inputs,
        also under ``torch.autocast`` (which leaves ``x``'s dtype, as for ``batch_norm``).
        Differentiable twice (``create_graph=True`` switches the backward to torch ops), except
        with ``sync=True`` across processes, where double backward raises.

    Raises:
        ValueError: in training, when a segment present in the batch (the global batch when
            synced) has exactly one row, as torch does for a channel with one value.
    """
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"segment_batch_norm: x must be a tensor of shape (N, C), got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    op = "segment_batch_norm"
    num_segments = as_int(num_segments, "num_segments", op)
    eps = as_real(eps, "eps", op, positive=True)
    if momentum is not None:
        momentum = as_fraction(momentum, "momentum", op)
    training = as_bool(training, "training", op)
    for name, table in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        _check_table(name, table, num_segments, x)
    if momentum is None:
        raise ValueError("segment_batch_norm: momentum must be a float; momentum=None (cumulative averaging) "
                         "is not supported")
    if (running_mean is None) != (running_var is None):
        raise ValueError("segment_batch_norm: running_mean and running_var must both be given or both be None")
    acc = _acc_dtype(x.dtype)
    weight_acc = weight.to(acc) if weight is not None else None
    bias_acc = bias.to(acc) if bias is not None else None
    if training:
        count, mean, m2 = torch.ops.ppt.segment_bn_stats.default(x.detach(), segment, num_segments)
        group = _sync_group(sync, process_group)
        if group is not None:
            count, mean, m2 = _all_reduce_moments(count, mean, m2, group)
        if bool((count == 1).any()):
            lonely = int(torch.nonzero(count == 1)[0, 0])
            raise ValueError("Expected more than 1 value per channel when training, got segment "
                             f"{lonely} with a single row (input size {tuple(x.shape)})")
        var = m2 / count.clamp_min(1).to(acc)[:, None]
        invstd = torch.rsqrt(var + eps)
        if running_mean is not None:
            _update_running_stats(running_mean, running_var, count, mean, m2, momentum)
        return _SegmentBatchNormFunction.apply(x, segment, mean, invstd, count, weight_acc, bias_acc, group, eps)
    if running_mean is None:
        raise ValueError("segment_batch_norm: running_mean and running_var are required when training=False")
    mean = running_mean.detach().to(acc)
    invstd = torch.rsqrt(running_var.detach().to(acc) + eps)
    return _SegmentBatchNormFunction.apply(x, segment, mean, invstd, None, weight_acc, bias_acc, None, eps)


@torch.no_grad()
def _update_running_stats(running_mean: Tensor, running_var: Tensor, count: Tensor, mean: Tensor,
                          m2: Tensor, momentum: float) -> None:
    """torch BatchNorm's update, restricted to the segments that have rows in the batch."""
    present = (count > 0)[:, None]
    unbiased_var = m2 / (count - 1).clamp_min(1).to(m2.dtype)[:, None]
    new_mean = running_mean * (1 - momentum) + mean.to(running_mean.dtype) * momentum
    new_var = running_var * (1 - momentum) + unbiased_var.to(running_var.dtype) * momentum
    running_mean.copy_(torch.where(present, new_mean, running_mean))
    running_var.copy_(torch.where(present, new_var, running_var))


@torch.library.register_fake("ppt::segment_bn_stats")
def _segment_bn_stats_fake(x: Tensor, segment: Tensor, num_segments: int):
    acc = _acc_dtype(x.dtype)
    shape = (num_segments, x.shape[1])
    return (segment.new_empty((num_segments,)), x.new_empty(shape, dtype=acc), x.new_empty(shape, dtype=acc))


@torch.library.register_fake("ppt::segment_bn_apply")
def _segment_bn_apply_fake(x, segment, mean, invstd, weight=None, bias=None):
    return x.new_empty(x.shape)


@torch.library.register_fake("ppt::segment_bn_backward_reduce")
def _segment_bn_backward_reduce_fake(grad_out, x, segment, mean, invstd):
    return mean.new_empty(mean.shape), mean.new_empty(mean.shape)


@torch.library.register_fake("ppt::segment_bn_backward")
def _segment_bn_backward_fake(grad_out, x, segment, mean, invstd, weight=None, count=None, sum_dy=None,
                              sum_dy_xhat=None):
    return x.new_empty(x.shape)


# The kernels are differentiable only as composed by segment_batch_norm (whose autograd.Function
# holds the formulas); differentiating one directly raises instead of giving zero gradients.
for _op in ("segment_bn_stats", "segment_bn_apply", "segment_bn_backward_reduce", "segment_bn_backward"):
    register_not_differentiable(_op, f"ppt::{_op} has no autograd formula of its own; differentiate through "
                                     "ppt.ops.segment_batch_norm, which composes it")
