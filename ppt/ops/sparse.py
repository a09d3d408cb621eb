"""Sparse 3-D convolution ops: kernel maps and gather-GEMM-scatter convolution (spconv 2.x semantics).

Thin typed wrappers over ``torch.ops.ppt.*``; kernels live in ``csrc/sparse``. The map of a
transposed convolution (:func:`sparse_transposed_kernel_map`) is composed of PyTorch ops here.
The layers of :mod:`ppt.nn` and :class:`ppt.sparse.SparseTensor` build on these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ppt.ops._args import as_bool, as_int, as_int_triple, as_int_tuple
from ppt.ops._reference import _kernel_offsets

__all__ = ["sparse_kernel_map", "sparse_transposed_kernel_map", "sparse_conv", "conv_output_shape",
           "conv_transpose_output_shape"]

# Site keys pack [b, x, y, z] into an int64 below 2**62, as the kernel-map ops do.
_KEY_LIMIT = 2**62


def _spatial_shape(spatial_shape, op: str) -> list[int]:
    """The 1 to 3 grid sizes of ``spatial_shape`` (a sequence), each >= 1."""
    if not isinstance(spatial_shape, Sequence) or isinstance(spatial_shape, str) or not 1 <= len(spatial_shape) <= 3:
        raise ValueError(f"{op}: spatial_shape must be a sequence of 1 to 3 ints, got {spatial_shape!r}")
    return as_int_tuple(spatial_shape, len(spatial_shape), "spatial_shape", op, minimum=1)


def conv_output_shape(spatial_shape: Sequence[int], kernel_size, stride=1, padding=0, dilation=1) -> list[int]:
    """spconv's output spatial shape ``floor((in + 2 p - d (k - 1) - 1) / s) + 1`` per axis (1 to 3 axes)."""
    op = "conv_output_shape"
    shape = _spatial_shape(spatial_shape, op)
    k, s, p, d = _conv_geometry(op, len(shape), kernel_size, stride, padding, dilation)
    return [(n + 2 * p[a] - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a, n in enumerate(shape)]


def conv_transpose_output_shape(spatial_shape: Sequence[int], kernel_size, stride=1, padding=0,
                                dilation=1) -> list[int]:
    """Output spatial shape of a transposed convolution, ``(in - 1) s - 2 p + d (k - 1) + 1`` per axis
    (``torch.nn.ConvTranspose3d``'s, without ``output_padding``)."""
    op = "conv_transpose_output_shape"
    shape = _spatial_shape(spatial_shape, op)
    k, s, p, d = _conv_geometry(op, len(shape), kernel_size, stride, padding, dilation)
    return [(n - 1) * s[a] - 2 * p[a] + d[a] * (k[a] - 1) + 1 for a, n in enumerate(shape)]


def _conv_geometry(op: str, ndim: int, kernel_size, stride, padding, dilation) -> list[list[int]]:
    """kernel_size, stride, padding and dilation as ``ndim`` ints each (>= 1, >= 1, >= 0, >= 1)."""
    return [as_int_tuple(kernel_size, ndim, "kernel_size", op, minimum=1),
            as_int_tuple(stride, ndim, "stride", op, minimum=1),
            as_int_tuple(padding, ndim, "padding", op, minimum=0),
            as_int_tuple(dilation, ndim, "dilation", op, minimum=1)]


def sparse_kernel_map(
    indices: Tensor,
    batch_size: int,
    spatial_shape: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    submanifold: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Input/output site pairs of a sparse convolution, grouped by kernel offset.

    Kernel offset ``k`` enumerates ``(i, j, l)`` of a ``kx x ky x kz`` kernel with ``l`` fastest
    (the flattening of spconv's weight ``(out, kx, ky, kz, in)``). Output site ``o`` reads input
    site ``o * stride - padding + (i, j, l) * dilation`` (cross-correlation, like ``conv3d``).
    Submanifold maps keep the input sites as outputs and centre the kernel (padding
    ``kernel_size // 2 * dilation``, the layer padding is ignored as in spconv); strided maps
    output every in-range site reached from an input site, sorted by ``(b, x, y, z)``.

    Args:
        indices: ``(N, 4)`` int32 rows ``[b, x, y, z]``, distinct, with ``0 <= b < batch_size``
            and ``0 <= x < spatial_shape[0]`` etc.
        batch_size: number of samples ``B >= 1``.
        spatial_shape: input grid ``(X, Y, Z)``.
        kernel_size, stride, padding, dilation: ints or 3-sequences (``>= 1``, ``>= 1``,
            ``>= 0``, ``>= 1``); the output grid is :func:`conv_output_shape`.
        submanifold: submanifold (SubM) map; requires stride 1 and odd kernel sizes.

    Returns:
        ``out_indices`` ``(M, 4)`` int32 (a copy of ``indices`` for submanifold maps),
        ``pairs`` ``(2, P)`` int32 rows ``[input row; output row]`` grouped by offset and
        ``pair_offsets`` ``(K + 1,)`` int64 with offset ``k``'s pairs at
        ``pairs[:, pair_offsets[k]:pair_offsets[k + 1]]``. ``M`` and ``P`` depend on the data.
    """
    op = "sparse_kernel_map"
    batch_size = as_int(batch_size, "batch_size", op)
    spatial_shape = as_int_triple(spatial_shape, "spatial_shape", op)
    kernel_size, stride, padding, dilation = _conv_geometry(op, 3, kernel_size, stride, padding, dilation)
    submanifold = as_bool(submanifold, "submanifold", op)
    return torch.ops.ppt.sparse_kernel_map.default(
        indices, batch_size, spatial_shape, kernel_size, stride, padding, dilation, submanifold,
    )


def _site_keys(sites: Tensor, extent: Sequence[int]) -> Tensor:
    """int64 keys of ``[b, x, ...]`` rows, ordered as the rows sorted by ``(b, x, y, z)``."""
    keys = sites[:, 0].long()
    for axis, size in enumerate(extent):
        keys = keys * size + sites[:, axis + 1]
    return keys


def _check_sites(indices: Tensor, batch_size: int, spatial_shape: Sequence[int], op: str) -> None:
    """Batch ids in ``[0, batch_size)``, coordinates inside ``spatial_shape`` and no duplicate rows
    (what the kernel-map ops check in C++). Reads the data, so it runs in eager mode only."""
    if indices.shape[0] == 0:
        return
    low, high = indices.amin(0).tolist(), indices.amax(0).tolist()
    if low[0] < 0 or high[0] >= batch_size:
        raise ValueError(f"{op}: batch ids (indices[:, 0]) must be in [0, batch_size={batch_size}), got range "
                         f"[{low[0]}, {high[0]}]")
    for axis, size in enumerate(spatial_shape):
        if low[axis + 1] < 0 or high[axis + 1] >= size:
            raise ValueError(f"{op}: coordinates indices[:, {axis + 1}] must be in [0, spatial_shape[{axis}]={size}), "
                             f"got range [{low[axis + 1]}, {high[axis + 1]}]")
    if torch.unique(_site_keys(indices, spatial_shape)).shape[0] != indices.shape[0]:
        raise ValueError(f"{op}: indices contain a duplicate site")


def sparse_transposed_kernel_map(
    indices: Tensor,
    batch_size: int,
    spatial_shape: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> tuple[Tensor, Tensor, Tensor]:
    """Input/output site pairs of a transposed sparse convolution (spconv's ``SparseConvTranspose``),
    grouped by kernel offset.

    Input site ``i`` reaches output site ``i * stride - padding + (i, j, l) * dilation`` through
    kernel offset ``(i, j, l)`` (``torch.nn.ConvTranspose3d``'s geometry: the adjoint of the strided
    map of :func:`sparse_kernel_map` with the same arguments); the outputs are every site of the
    grid :func:`conv_transpose_output_shape` reached from an input site, sorted by ``(b, x, y, z)``.
    Works on 1-, 2- and 3-D grids. Built from PyTorch ops (it has no kernel of its own), so it
    traces under ``torch.compile``; the checks of the sites (range, duplicates) read the data and
    run in eager mode only.

    Args:
        indices: ``(N, 1 + D)`` int32 rows ``[b, x, ...]``, distinct, inside the batch and grid.
        batch_size, spatial_shape, kernel_size, stride, padding, dilation: as for
            :func:`sparse_kernel_map`, with ``D`` entries per sequence.

    Returns:
        ``out_indices`` ``(M, 1 + D)`` int32, ``pairs`` ``(2, P)`` int32 ``[input row; output row]``
        grouped by offset and ``pair_offsets`` ``(K + 1,)`` int64, as :func:`sparse_kernel_map`.
    """
    op = "sparse_transposed_kernel_map"
    if not isinstance(indices, Tensor) or indices.dim() != 2 or not 2 <= indices.shape[1] <= 4:
        raise ValueError(f"{op}: indices must be (N, 1 + D) rows [b, x, ...] with D in 1..3, got "
                         f"{tuple(indices.shape) if isinstance(indices, Tensor) else type(indices).__name__}")
    if indices.dtype != torch.int32:
        raise TypeError(f"{op}: indices must have dtype torch.int32, got {indices.dtype}")
    ndim = indices.shape[1] - 1
    batch_size = as_int(batch_size, "batch_size", op, minimum=1)
    in_shape = as_int_tuple(spatial_shape, ndim, "spatial_shape", op, minimum=1)
    kernel_size, stride, padding, dilation = _conv_geometry(op, ndim, kernel_size, stride, padding, dilation)
    out_shape = conv_transpose_output_shape(in_shape, kernel_size, stride, padding, dilation)
    if min(out_shape) < 1:
        raise ValueError(f"{op}: the output spatial shape {out_shape} would be empty (input {in_shape}, kernel_size "
                         f"{kernel_size}, stride {stride}, padding {padding}, dilation {dilation})")
    if batch_size * math.prod(out_shape) >= _KEY_LIMIT:
        raise ValueError(f"{op}: batch_size x output spatial shape ({batch_size} x {out_shape}) does not fit the "
                         "62-bit site key packing")
    if not torch.compiler.is_compiling():
        _check_sites(indices, batch_size, in_shape, op)
    device = indices.device
    offsets = _kernel_offsets(kernel_size, device)  # (K, D)
    sites = indices.long()
    step, shift, spread, extent = (torch.tensor(v, dtype=torch.int64, device=device)
                                   for v in (stride, padding, dilation, out_shape))
    reached = sites[None, :, 1:] * step - shift + offsets[:, None, :] * spread  # (K, N, D)
    inside = ((reached >= 0) & (reached < extent)).all(-1)
    offset_of_pair, rows_in = inside.nonzero(as_tuple=True)  # grouped by offset, inputs ascending
    out_keys, rows_out = torch.unique(_site_keys(torch.cat([sites[rows_in, :1], reached[offset_of_pair, rows_in]], 1),
                                                 out_shape), sorted=True, return_inverse=True)
    out_sites = []
    for size in reversed(out_shape):
        out_sites.append(out_keys % size)
        out_keys = out_keys // size
    out_indices = torch.stack([out_keys, *reversed(out_sites)], 1).int()
    counts = torch.bincount(offset_of_pair, minlength=offsets.shape[0])
    pair_offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return out_indices, torch.stack([rows_in, rows_out]).int(), pair_offsets


def sparse_conv(features: Tensor, weight: Tensor, pairs: Tensor, pair_offsets: Tensor, num_out: int) -> Tensor:
    """``out[o] = sum over pairs (i, o) of offset k of weight[:, k, :] @ features[i]``.

    Args:
        features: ``(N, Cin)`` float16/bfloat16/float32/float64.
        weight: ``(Cout, K, Cin)``, same dtype and device (spconv's ``(Cout, kx, ky, kz, Cin)``
            reshaped).
        pairs: ``(2, P)`` int32 ``[input rows; output rows]``; the output rows of one offset must
            be distinct, and for the backward its input rows too (true of every map from
            :func:`sparse_kernel_map` and of its ``pairs.flip(0)``, the map of the inverse
            convolution).
        pair_offsets: ``(K + 1,)`` int64 grouping of ``pairs`` by offset.
        num_out: number of output rows ``M``.

    Returns:
        ``(M, Cout)`` in the dtype of ``features``, accumulated in float32 for half inputs (float64
        for float64). Differentiable in ``features`` and ``weight``, twice (the backward op has an
        autograd formula of its own); forward and backward are deterministic (no atomics; offsets
        are summed in a fixed order). Under ``torch.autocast`` the floating inputs are cast to the
        autocast dtype, like ``conv3d``.
    """
    num_out = as_int(num_out, "num_out", "sparse_conv")
    return torch.ops.ppt.sparse_conv.default(features, weight, pairs, pair_offsets, num_out)


@torch.library.register_fake("ppt::sparse_kernel_map")
def _sparse_kernel_map_fake(indices, batch_size, spatial_shape, kernel_size, stride, padding, dilation, submanifold):
    ctx = torch.library.get_ctx()
    num_out = indices.shape[0] if submanifold else ctx.new_dynamic_size()
    num_pairs = ctx.new_dynamic_size()
    volume = kernel_size[0] * kernel_size[1] * kernel_size[2]
    return (
        indices.new_empty((num_out, 4)),
        indices.new_empty((2, num_pairs)),
        indices.new_empty((volume + 1,), dtype=torch.int64),
    )


@torch.library.register_fake("ppt::sparse_conv")
def _sparse_conv_fake(features, weight, pairs, pair_offsets, num_out):
    return features.new_empty((num_out, weight.shape[0]))


@torch.library.register_fake("ppt::sparse_conv_backward")
def _sparse_conv_backward_fake(grad_out, features, weight, pairs, pair_offsets, num_out):
    return torch.empty_like(features), torch.empty_like(weight)


def _sparse_conv_setup_context(ctx, inputs, output):
    features, weight, pairs, pair_offsets, num_out = inputs
    ctx.save_for_backward(features, weight, pairs, pair_offsets)
    ctx.num_out = num_out


def _sparse_conv_backward(ctx, grad_out: Tensor):
    features, weight, pairs, pair_offsets = ctx.saved_tensors
    grad_features, grad_weight = torch.ops.ppt.sparse_conv_backward.default(
        grad_out.contiguous(), features, weight, pairs, pair_offsets, ctx.num_out
    )
    return grad_features, grad_weight, None, None, None


def _sparse_conv_backward_setup_context(ctx, inputs, output):
    grad_out, features, weight, pairs, pair_offsets, num_out = inputs
    ctx.save_for_backward(grad_out, features, weight, pairs, pair_offsets)
    ctx.num_out = num_out


def _sparse_conv_double_backward(ctx, grad_grad_features: Tensor | None, grad_grad_weight: Tensor | None):
    """VJP of the backward op, expressed through the two conv ops so it is differentiable again.

    With ``F`` the forward (``F(f, W)[o] = sum W_k f[i]``), the backward op returns
    ``grad_features = F^T(g, W)`` (``sum W_k^T g[o]`` into row ``i``) and ``grad_weight = G(g, f)``
    (``sum g[o] f[i]^T`` into ``W_k``), both bilinear. For incoming ``a = d grad_features`` and
    ``B = d grad_weight``: ``d g = F(a, W) + F(f, B)``, ``d f = F^T(g, B)`` (a forward conv over the
    flipped map with ``B`` transposed) and ``d W = G(g, a)``.
    """
    grad_out, features, weight, pairs, pair_offsets = ctx.saved_tensors
    need_grad_out, need_features, need_weight = ctx.needs_input_grad[:3]
    conv = torch.ops.ppt.sparse_conv.default
    grad_grad_out = grad_features = grad_weight = None
    if need_grad_out:
        grad_grad_out = grad_out.new_zeros(grad_out.shape)
        if grad_grad_features is not None:
            grad_grad_out = grad_grad_out + conv(grad_grad_features.contiguous(), weight, pairs, pair_offsets,
                                                 ctx.num_out)
        if grad_grad_weight is not None:
            grad_grad_out = grad_grad_out + conv(features, grad_grad_weight.contiguous(), pairs, pair_offsets,
                                                 ctx.num_out)
    if need_features and grad_grad_weight is not None:
        grad_features = conv(grad_out, grad_grad_weight.transpose(0, 2).contiguous(), pairs.flip(0), pair_offsets,
                             features.shape[0])
    if need_weight and grad_grad_features is not None:
        # The op's grad_features half is computed and dropped: G has no op of its own.
        grad_weight = torch.ops.ppt.sparse_conv_backward.default(
            grad_out, grad_grad_features.contiguous(), weight, pairs, pair_offsets, ctx.num_out)[1]
    return grad_grad_out, grad_features, grad_weight, None, None, None


torch.library.register_autograd("ppt::sparse_conv", _sparse_conv_backward, setup_context=_sparse_conv_setup_context)
torch.library.register_autograd("ppt::sparse_conv_backward", _sparse_conv_double_backward,
                                setup_context=_sparse_conv_backward_setup_context)
