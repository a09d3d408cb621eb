"""Sparse max / average pooling over a kernel map (spconv 2.x's ``SparseMaxPool`` / ``SparseAvgPool``).

Thin typed wrappers over ``torch.ops.ppt.sparse_{max,avg}_pool``; kernels live in
``csrc/sparse/pool_*``. The kernel map is a strided one from :func:`ppt.ops.sparse_kernel_map`
(``submanifold=False``); the layers :class:`ppt.nn.SparseMaxPool3d` and
:class:`ppt.nn.SparseAvgPool3d` build it. Both ops are differentiable twice: their backward ops
are linear in the incoming gradient and have autograd formulas of their own.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppt.ops._args import as_int

__all__ = ["sparse_max_pool", "sparse_avg_pool"]


def sparse_max_pool(features: Tensor, pairs: Tensor, pair_offsets: Tensor, num_out: int) -> Tensor:
    """``out[o, c] = max over pairs (i, o) of features[i, c]``.

    Args:
        features: ``(N, C)`` float16/bfloat16/float32/float64.
        pairs: ``(2, P)`` int32 ``[input rows; output rows]`` on the device of ``features``; the
            output rows of one offset must be distinct, and its input rows too (true of every map
            from :func:`ppt.ops.sparse_kernel_map`), and a pair ``(i, o)`` may appear only once.
        pair_offsets: ``(K + 1,)`` int64 grouping of ``pairs`` by kernel offset.
        num_out: number of output rows ``M``.

    Returns:
        ``(M, C)`` in the dtype of ``features``; only the winning input receives the gradient. A
        tie goes to the pair of the lowest kernel offset; NaN propagates, the last NaN pair
        winning (both as in ``torch.nn.functional.max_pool3d``); a row that no pair reaches is 0.
        Forward and backward are deterministic (no atomics).
    """
    num_out = as_int(num_out, "num_out", "sparse_max_pool")
    return torch.ops.ppt.sparse_max_pool.default(features, pairs, pair_offsets, num_out)[0]


def sparse_avg_pool(features: Tensor, pairs: Tensor, pair_offsets: Tensor, num_out: int) -> Tensor:
    """``out[o] = mean over pairs (i, o) of features[i]``: the mean over the inputs present in the
    window (spconv's count of real points), not over the kernel volume.

    Arguments as for :func:`sparse_max_pool`. Returns ``(M, C)`` in the dtype of ``features``,
    summed in float32 for half inputs (float64 for float64); a row that no pair reaches is 0.
    Forward and backward are deterministic (no float atomics).
    """
    num_out = as_int(num_out, "num_out", "sparse_avg_pool")
    return torch.ops.ppt.sparse_avg_pool.default(features, pairs, pair_offsets, num_out)


# ---- fake kernels -------------------------------------------------------------------------------


@torch.library.register_fake("ppt::sparse_max_pool")
def _sparse_max_pool_fake(features, pairs, pair_offsets, num_out):
    shape = (num_out, features.shape[1])
    return features.new_empty(shape), features.new_empty(shape, dtype=torch.int32)


@torch.library.register_fake("ppt::sparse_max_pool_backward")
def _sparse_max_pool_backward_fake(grad_out, argmax, pairs, pair_offsets, num_in):
    return grad_out.new_empty((num_in, grad_out.shape[1]))


@torch.library.register_fake("ppt::sparse_avg_pool")
def _sparse_avg_pool_fake(features, pairs, pair_offsets, num_out):
    return features.new_empty((num_out, features.shape[1]))


@torch.library.register_fake("ppt::sparse_avg_pool_backward")
def _sparse_avg_pool_backward_fake(grad_out, pairs, pair_offsets, num_in):
    return grad_out.new_empty((num_in, grad_out.shape[1]))


# ---- autograd -----------------------------------------------------------------------------------
# max pooling: grad_in = B(grad_out), B routing each output element's gradient to its argmax row.
# B is linear in grad_out, so its own VJP is B^T: a gather of the incoming gradient at argmax.
# avg pooling: grad_in = A^T(grad_out) for the linear averaging A; the VJP of A^T is A itself.


def _gather_at_argmax(values: Tensor, argmax: Tensor) -> Tensor:
    """``(M, C)`` with ``values[argmax[o, c], c]``, and 0 where ``argmax`` is -1."""
    padded = torch.cat([values, values.new_zeros((1, values.shape[1]))])
    return padded.gather(0, torch.where(argmax < 0, values.shape[0], argmax).long())


def _max_pool_setup_context(ctx, inputs, output):
    features, pairs, pair_offsets, _ = inputs
    ctx.save_for_backward(output[1], pairs, pair_offsets)
    ctx.num_in = features.shape[0]


def _max_pool_backward(ctx, grad_out: Tensor, _grad_argmax):
    argmax, pairs, pair_offsets = ctx.saved_tensors
    grad_features = torch.ops.ppt.sparse_max_pool_backward.default(grad_out, argmax, pairs, pair_offsets, ctx.num_in)
    return grad_features, None, None, None


def _max_pool_backward_setup_context(ctx, inputs, output):
    _, argmax, _, _, _ = inputs
    ctx.save_for_backward(argmax)


def _max_pool_double_backward(ctx, grad_grad_in: Tensor):
    (argmax,) = ctx.saved_tensors
    return _gather_at_argmax(grad_grad_in, argmax), None, None, None, None


def _save_map_and_rows(ctx, inputs, output):
    # For both avg ops: the map, and the row count of the first input (the rows the VJP returns).
    ctx.save_for_backward(inputs[1], inputs[2])
    ctx.rows = inputs[0].shape[0]


def _avg_pool_backward(ctx, grad_out: Tensor):
    pairs, pair_offsets = ctx.saved_tensors
    return torch.ops.ppt.sparse_avg_pool_backward.default(grad_out, pairs, pair_offsets, ctx.rows), None, None, None


def _avg_pool_double_backward(ctx, grad_grad_in: Tensor):
    pairs, pair_offsets = ctx.saved_tensors
    return torch.ops.ppt.sparse_avg_pool.default(grad_grad_in, pairs, pair_offsets, ctx.rows), None, None, None


torch.library.register_autograd("ppt::sparse_max_pool", _max_pool_backward, setup_context=_max_pool_setup_context)
torch.library.register_autograd("ppt::sparse_max_pool_backward", _max_pool_double_backward,
                                setup_context=_max_pool_backward_setup_context)
torch.library.register_autograd("ppt::sparse_avg_pool", _avg_pool_backward, setup_context=_save_map_and_rows)
torch.library.register_autograd("ppt::sparse_avg_pool_backward", _avg_pool_double_backward,
                                setup_context=_save_map_and_rows)
