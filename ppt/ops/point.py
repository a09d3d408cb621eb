"""Point-cloud ops: voxelization, farthest point sampling and k-nearest neighbours.

Thin typed wrappers over ``torch.ops.ppt.*``; kernels live in ``csrc/point``. Each op has a
fake (meta) implementation for ``torch.compile`` and, where differentiable, an autograd formula
that calls its backward op.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppt.ops._args import as_int, as_real

__all__ = ["voxelize", "farthest_point_sample", "knn"]


def voxelize(coord: Tensor, voxel_size: float, batch: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Group points into voxels of edge ``voxel_size`` (Pointcept ``GridSample`` grid).

    The grid index of a point is ``floor(coord / voxel_size)`` computed in float64 (voxel
    boundaries are aligned with the world origin), then shifted by its scene's minimum so that
    every scene starts at 0.

    Args:
        coord: ``(N, 3)`` float16/bfloat16/float32/float64, finite.
        voxel_size: edge length, a finite real number > 0.
        batch: optional ``(N,)`` int64 scene id of each point (>= 0); ``None`` means one scene.

    Returns:
        ``voxel_coords`` ``(M, 4)`` int32 rows ``[b, x, y, z]`` sorted lexicographically,
        ``inverse`` ``(N,)`` int64 with ``voxel_coords[inverse[i]]`` the voxel of point ``i``, and
        ``counts`` ``(M,)`` int64 points per voxel. ``M`` depends on the data.
    """
    voxel_size = as_real(voxel_size, "voxel_size", "voxelize")
    return torch.ops.ppt.voxelize.default(coord, voxel_size, batch)


def farthest_point_sample(xyz: Tensor, num_samples: int, start_index: int = 0) -> Tensor:
    """Iterative farthest point sampling per cloud.

    Starts at ``start_index`` and repeatedly takes the point whose squared Euclidean distance to
    the chosen set is largest (ties to the lower index). Distances are computed in float32 for
    half inputs.

    Args:
        xyz: ``(B, N, 3)`` floating point, finite, every coordinate at most 1e18 in magnitude
            (1e153 for float64) so that squared distances cannot overflow.
        num_samples: ``S`` in ``[0, N]`` (an int).
        start_index: first sample of every cloud, in ``[0, N)``.

    Returns:
        ``(B, S)`` int64 indices into ``N``.
    """
    num_samples = as_int(num_samples, "num_samples", "farthest_point_sample")
    start_index = as_int(start_index, "start_index", "farthest_point_sample")
    return torch.ops.ppt.farthest_point_sample.default(xyz, num_samples, start_index)


def knn(query: Tensor, points: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of each query among ``points`` of the same cloud.

    Args:
        query: ``(B, M, 3)`` floating point, finite, every coordinate at most 1e18 in magnitude
            (1e153 for float64) so that squared distances cannot overflow.
        points: ``(B, N, 3)``, same dtype, device and coordinate bound as ``query``.
        k: neighbours per query, an int in ``[0, N]``.

    Returns:
        ``dist2`` ``(B, M, k)`` squared distances (dtype of the inputs, computed in float32 for
        half inputs) in ascending order, ties to the lower index, and ``index`` ``(B, M, k)``
        int64. ``dist2`` is differentiable with respect to ``query`` and ``points``, twice. Under
        ``torch.autocast`` the op runs in float32, like ``cdist``.
    """
    k = as_int(k, "k", "knn")
    return torch.ops.ppt.knn.default(query, points, k)


@torch.library.register_fake("ppt::voxelize")
def _voxelize_fake(coord: Tensor, voxel_size: float, batch: Tensor | None = None):
    num_voxels = torch.library.get_ctx().new_dynamic_size()
    return (
        coord.new_empty((num_voxels, 4), dtype=torch.int32),
        coord.new_empty((coord.shape[0],), dtype=torch.int64),
        coord.new_empty((num_voxels,), dtype=torch.int64),
    )


@torch.library.register_fake("ppt::farthest_point_sample")
def _fps_fake(xyz: Tensor, num_samples: int, start_index: int = 0):
    return xyz.new_empty((xyz.shape[0], num_samples), dtype=torch.int64)


@torch.library.register_fake("ppt::knn")
def _knn_fake(query: Tensor, points: Tensor, k: int):
    shape = (query.shape[0], query.shape[1], k)
    return query.new_empty(shape), query.new_empty(shape, dtype=torch.int64)


@torch.library.register_fake("ppt::knn_backward")
def _knn_backward_fake(grad_dist2: Tensor, query: Tensor, points: Tensor, index: Tensor):
    return torch.empty_like(query), torch.empty_like(points)


def _knn_setup_context(ctx, inputs, output):
    query, points, _ = inputs
    _, index = output
    ctx.save_for_backward(query, points, index)


def _knn_backward(ctx, grad_dist2: Tensor, grad_index: Tensor | None):
    query, points, index = ctx.saved_tensors
    grad_query, grad_points = torch.ops.ppt.knn_backward.default(grad_dist2, query, points, index)
    return grad_query, grad_points, None


def _knn_backward_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _knn_double_backward(ctx, grad_grad_query: Tensor | None, grad_grad_points: Tensor | None):
    """VJP of the backward op, through the backward op itself so it is differentiable again.

    ``knn_backward(g, q, p, index)`` is linear in ``(q, p)`` for fixed ``g``: with
    ``d = q - p[index]`` it returns ``(sum_j 2 g d, -scatter(2 g d))``. For incoming
    ``(a_q, a_p)``: ``d g = 2 <a_q - a_p[index], d>`` and ``(d q, d p) = knn_backward(g, a_q, a_p, index)``.
    """
    grad_dist2, query, points, index = ctx.saved_tensors
    grad_grad_query = torch.zeros_like(query) if grad_grad_query is None else grad_grad_query.contiguous()
    grad_grad_points = torch.zeros_like(points) if grad_grad_points is None else grad_grad_points.contiguous()
    grad_grad_dist2 = grad_query = grad_points = None
    if ctx.needs_input_grad[0]:
        # In float32 for half inputs, like the kernels.
        compute = torch.float64 if query.dtype == torch.float64 else torch.float32
        gather_index = index.reshape(index.shape[0], -1, 1).expand(-1, -1, 3)

        def offsets(q: Tensor, p: Tensor) -> Tensor:
            """(B, M, k, 3) ``q[m] - p[index[m, j]]``."""
            neighbours = torch.gather(p.to(compute), 1, gather_index).reshape(*index.shape, 3)
            return q.to(compute)[:, :, None, :] - neighbours

        product = offsets(grad_grad_query, grad_grad_points) * offsets(query, points)
        grad_grad_dist2 = (2 * product.sum(-1)).to(grad_dist2.dtype)
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        grad_query, grad_points = torch.ops.ppt.knn_backward.default(grad_dist2, grad_grad_query, grad_grad_points,
                                                                     index)
    return grad_grad_dist2, grad_query, grad_points, None


torch.library.register_autograd("ppt::knn", _knn_backward, setup_context=_knn_setup_context)
torch.library.register_autograd("ppt::knn_backward", _knn_double_backward, setup_context=_knn_backward_setup_context)
