"""Sparse max and average pooling layers with spconv 2.x semantics, on 1-, 2- and 3-D grids.

Like spconv's ``SparseMaxPool3d`` / ``SparseAvgPool3d``: the output sites are those of a
``SparseConv3d`` with the same geometry (every site of the output grid reached from an input
site, sorted by ``(b, x, y, z)`` in ppt), and with ``indice_key`` set a ``SparseInverseConv3d``
with the same key and kernel size maps back to the pooled tensor's sites. The global pools
reduce each scene's sites to one row, returning a dense ``(B, C)`` tensor as spconv's do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ppt.nn.sparse_module import SparseModule
from ppt.ops._args import as_int_tuple
from ppt.ops.sparse_pool import sparse_avg_pool, sparse_max_pool
from ppt.sparse.tensor import SparseTensor, check_spatial_dims

__all__ = ["SparseMaxPool", "SparseAvgPool", "SparseMaxPool1d", "SparseMaxPool2d", "SparseMaxPool3d",
           "SparseAvgPool1d", "SparseAvgPool2d", "SparseAvgPool3d", "SparseGlobalMaxPool", "SparseGlobalAvgPool"]


def _check_sparse_input(layer: str, x: SparseTensor) -> None:
    if not isinstance(x, SparseTensor):
        raise TypeError(f"{layer} expects a ppt.sparse.SparseTensor, got {type(x).__name__}")
    x.check_rows(layer)


class _SparsePool(SparseModule):
    ndim: int
    pool: Callable[[Tensor, Tensor, Tensor, int], Tensor]

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                 indice_key: str | None = None) -> None:
        super().__init__()
        layer = type(self).__name__
        check_spatial_dims(layer, self.ndim)
        self.kernel_size = tuple(as_int_tuple(kernel_size, self.ndim, "kernel_size", layer, minimum=1))
        # spconv's default: windows that tile the grid (stride = kernel_size).
        self.stride = self.kernel_size if stride is None else tuple(
            as_int_tuple(stride, self.ndim, "stride", layer, minimum=1))
        self.padding = tuple(as_int_tuple(padding, self.ndim, "padding", layer, minimum=0))
        self.dilation = tuple(as_int_tuple(dilation, self.ndim, "dilation", layer, minimum=1))
        self.indice_key = indice_key

    def forward(self, x: SparseTensor) -> SparseTensor:
        layer = type(self).__name__
        _check_sparse_input(layer, x)
        if x.ndim != self.ndim:
            raise ValueError(f"{layer} expects a {self.ndim}-D sparse tensor (indices (N, {self.ndim + 1})), got a "
                             f"{x.ndim}-D one (spatial_shape {x.spatial_shape})")
        kmap = x.cache.get_or_build(self.indice_key, x.indices, x.spatial_shape, x.batch_size, self.kernel_size,
                                    self.stride, self.padding, self.dilation, False)
        out = self.pool(x.features, kmap.pairs, kmap.pair_offsets, kmap.out_indices.shape[0])
        return x.derive(out, kmap.out_indices, kmap.out_spatial_shape)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, indice_key={self.indice_key!r}")


class SparseMaxPool(_SparsePool):
    """Per channel, the maximum over the input sites in each window (ties and NaN as in
    ``torch.nn.functional.max_pool3d``). ``stride`` defaults to ``kernel_size`` as in spconv."""

    pool = staticmethod(sparse_max_pool)


class SparseAvgPool(_SparsePool):
    """The mean over the input sites present in each window (not over the kernel volume), as in
    spconv. ``stride`` defaults to ``kernel_size``."""

    pool = staticmethod(sparse_avg_pool)


class SparseMaxPool1d(SparseMaxPool):
    ndim = 1


class SparseMaxPool2d(SparseMaxPool):
    ndim = 2


class SparseMaxPool3d(SparseMaxPool):
    ndim = 3


class SparseAvgPool1d(SparseAvgPool):
    ndim = 1


class SparseAvgPool2d(SparseAvgPool):
    ndim = 2


class SparseAvgPool3d(SparseAvgPool):
    ndim = 3


class _SparseGlobalPool(SparseModule):
    reduce: str

    def forward(self, x: SparseTensor) -> Tensor:
        """``(B, C)``: one row per scene of ``x`` (zeros for a scene without sites)."""
        _check_sparse_input(type(self).__name__, x)
        scenes = x.indices[:, 0].long()[:, None].expand_as(x.features)
        empty = x.features.new_zeros(x.batch_size, x.features.shape[1])
        return empty.scatter_reduce(0, scenes, x.features, self.reduce, include_self=False)


class SparseGlobalMaxPool(_SparseGlobalPool):
    """Per scene and channel, the maximum over the scene's sites (spconv's ``SparseGlobalMaxPool``).
    Returns a dense ``(B, C)`` tensor; where several sites share the maximum, the gradient is split
    evenly among them (``scatter_reduce``'s rule)."""

    reduce = "amax"


class SparseGlobalAvgPool(_SparseGlobalPool):
    """Per scene, the mean over the scene's sites: a dense ``(B, C)`` tensor. (spconv 2.3.8's layer
    of this name returns the first channel's mean only, a bug this one does not copy.)"""

    reduce = "mean"
