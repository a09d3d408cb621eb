"""Sparse 3-D max and average pooling layers with spconv 2.x semantics.

Like spconv's ``SparseMaxPool3d`` / ``SparseAvgPool3d``: the output sites are those of a
``SparseConv3d`` with the same geometry (every site of the output grid reached from an input
site, sorted by ``(b, x, y, z)`` in ppt), and with ``indice_key`` set a ``SparseInverseConv3d``
with the same key and kernel size maps back to the pooled tensor's sites.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from ppt.nn.sparse_module import SparseModule
from ppt.ops._args import as_int_triple
from ppt.ops.sparse_pool import sparse_avg_pool, sparse_max_pool
from ppt.sparse.tensor import SparseTensor

__all__ = ["SparseMaxPool3d", "SparseAvgPool3d"]


class _SparsePool3d(SparseModule):
    pool: Callable[[Tensor, Tensor, Tensor, int], Tensor]

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                 indice_key: str | None = None) -> None:
        super().__init__()
        layer = type(self).__name__
        self.kernel_size = tuple(as_int_triple(kernel_size, "kernel_size", layer, minimum=1))
        # spconv's default: windows that tile the grid (stride = kernel_size).
        self.stride = self.kernel_size if stride is None else tuple(as_int_triple(stride, "stride", layer, minimum=1))
        self.padding = tuple(as_int_triple(padding, "padding", layer, minimum=0))
        self.dilation = tuple(as_int_triple(dilation, "dilation", layer, minimum=1))
        self.indice_key = indice_key

    def forward(self, x: SparseTensor) -> SparseTensor:
        if not isinstance(x, SparseTensor):
            raise TypeError(f"{type(self).__name__} expects a ppt.sparse.SparseTensor, got {type(x).__name__}")
        x.check_rows(type(self).__name__)
        kmap = x.cache.get_or_build(self.indice_key, x.indices, x.spatial_shape, x.batch_size, self.kernel_size,
                                    self.stride, self.padding, self.dilation, False)
        out = self.pool(x.features, kmap.pairs, kmap.pair_offsets, kmap.out_indices.shape[0])
        return SparseTensor(out, kmap.out_indices, kmap.out_spatial_shape, x.batch_size, cache=x.cache)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, indice_key={self.indice_key!r}")


class SparseMaxPool3d(_SparsePool3d):
    """Per channel, the maximum over the input sites in each window (ties and NaN as in
    ``torch.nn.functional.max_pool3d``). ``stride`` defaults to ``kernel_size`` as in spconv."""

    pool = staticmethod(sparse_max_pool)


class SparseAvgPool3d(_SparsePool3d):
    """The mean over the input sites present in each window (not over the kernel volume), as in
    spconv. ``stride`` defaults to ``kernel_size``."""

    pool = staticmethod(sparse_avg_pool)
