"""Sparse 3-D convolution layers with spconv 2.x semantics and weight layout.

``weight`` has shape ``(out_channels, kx, ky, kz, in_channels)`` like spconv 2.x, so state_dicts of
``spconv.pytorch.SubMConv3d`` / ``SparseConv3d`` / ``SparseInverseConv3d`` load unchanged and give
the same outputs (up to the order of strided output sites, which ppt sorts by ``(b, x, y, z)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ppt.nn.sparse_module import SparseModule
from ppt.ops._args import as_bool, as_int, as_int_triple
from ppt.ops.sparse import sparse_conv
from ppt.sparse.tensor import KernelMap, SparseTensor

__all__ = ["SubMConv3d", "SparseConv3d", "SparseInverseConv3d"]


class _SparseConvBase(SparseModule):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], bias: bool,
                 indice_key: str | None) -> None:
        super().__init__()
        layer = type(self).__name__
        self.in_channels = as_int(in_channels, "in_channels", layer, minimum=1)
        self.out_channels = as_int(out_channels, "out_channels", layer, minimum=1)
        self.kernel_size = tuple(as_int_triple(kernel_size, "kernel_size", layer, minimum=1))
        as_bool(bias, "bias", layer)
        self.indice_key = indice_key
        self.weight = nn.Parameter(torch.empty(self.out_channels, *self.kernel_size, self.in_channels))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # conv3d's default (Kaiming-uniform with a = sqrt(5)) over fan_in = Cin * kernel volume.
        fan_in = self.in_channels * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def _check_input(self, x: SparseTensor) -> None:
        if not isinstance(x, SparseTensor):
            raise TypeError(f"{type(self).__name__} expects a ppt.sparse.SparseTensor, got {type(x).__name__}")
        x.check_rows(type(self).__name__)
        if x.features.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected {self.in_channels} input channels, "
                             f"got features of shape {tuple(x.features.shape)}")

    def _uses_matmul_layout(self) -> bool:
        """Whether spconv 2.x computes this layer as ``features @ weight.view(in, out)``.

        spconv stores every weight as ``(out, kx, ky, kz, in)`` but runs kernel-volume-1 layers
        (submanifold, or stride 1) as that plain matrix product, which reads the same memory as an
        ``(in, out)`` matrix (spconv issue #450). ppt reads such weights the same way, so
        spconv-trained state_dicts give spconv's outputs.
        """
        return math.prod(self.kernel_size) == 1

    def _weight_matrices(self) -> Tensor:
        """The weight as ``(Cout, K, Cin)``, the layout of :func:`ppt.ops.sparse_conv`."""
        if self._uses_matmul_layout():
            return self.weight.reshape(self.in_channels, self.out_channels).t().unsqueeze(1)
        return self.weight.reshape(self.out_channels, -1, self.in_channels)

    def _convolve(self, x: SparseTensor, pairs: Tensor, pair_offsets: Tensor, out_indices: Tensor,
               out_spatial_shape: tuple[int, int, int]) -> SparseTensor:
        weight = self._weight_matrices()
        out = sparse_conv(x.features, weight, pairs, pair_offsets, out_indices.shape[0])
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)  # under autocast, like conv3d: the output keeps the conv dtype
        return SparseTensor(out, out_indices, out_spatial_shape, x.batch_size, cache=x.cache)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}, indice_key={self.indice_key!r}")


class _ForwardConv(_SparseConvBase):
    submanifold: bool

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 indice_key=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias, indice_key)
        layer = type(self).__name__
        self.stride = tuple(as_int_triple(stride, "stride", layer, minimum=1))
        self.padding = tuple(as_int_triple(padding, "padding", layer, minimum=0))
        self.dilation = tuple(as_int_triple(dilation, "dilation", layer, minimum=1))
        if self.submanifold and self.stride != (1, 1, 1):
            raise ValueError(f"SubMConv3d requires stride 1, got {self.stride}")
        if self.submanifold and any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"SubMConv3d needs odd kernel_size entries (a centred kernel), got {self.kernel_size}")

    def _uses_matmul_layout(self) -> bool:
        # spconv takes its matrix-product path for strided layers only at stride 1.
        return super()._uses_matmul_layout() and (self.submanifold or self.stride == (1, 1, 1))

    def kernel_map(self, x: SparseTensor) -> KernelMap:
        return x.cache.get_or_build(self.indice_key, x.indices, x.spatial_shape, x.batch_size, self.kernel_size,
                                    self.stride, self.padding, self.dilation, self.submanifold)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        kmap = self.kernel_map(x)
        return self._convolve(x, kmap.pairs, kmap.pair_offsets, kmap.out_indices, kmap.out_spatial_shape)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", stride={self.stride}, padding={self.padding}, dilation={self.dilation}")


class SubMConv3d(_ForwardConv):
    """Submanifold convolution: outputs at exactly the input sites, kernel centred on each site.

    As in spconv, ``padding`` does not change the result (the kernel is always centred: offset
    ``(i, j, l)`` reads the site at ``(i, j, l) - kernel_size // 2`` times ``dilation``).
    """

    submanifold = True


class SparseConv3d(_ForwardConv):
    """Strided sparse convolution: outputs at every site of the output grid
    ``floor((in + 2 p - d (k - 1) - 1) / s) + 1`` reached from an input site, sorted by
    ``(b, x, y, z)``. With ``indice_key`` set, a ``SparseInverseConv3d`` with the same key maps back.
    """

    submanifold = False


class SparseInverseConv3d(_SparseConvBase):
    """Inverse of the ``SparseConv3d`` registered under ``indice_key``: outputs at that conv's input
    sites and spatial shape, using its kernel map with inputs and outputs swapped.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], indice_key: str,
                 bias: bool = True) -> None:
        if not indice_key:
            raise ValueError("SparseInverseConv3d requires the indice_key of the SparseConv3d it inverts")
        super().__init__(in_channels, out_channels, kernel_size, bias, indice_key)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        kmap = x.cache.find(self.indice_key)
        if kmap is None:
            raise KeyError(f"SparseInverseConv3d: no SparseConv3d with indice_key={self.indice_key!r} ran on this "
                           "tensor's network pass; the inverse conv needs that layer's kernel map")
        if kmap.kernel_size != self.kernel_size:
            raise ValueError(f"SparseInverseConv3d: kernel_size {self.kernel_size} differs from the kernel_size "
                             f"{kmap.kernel_size} of the SparseConv3d with indice_key={self.indice_key!r}")
        if kmap.out_indices.shape != x.indices.shape:
            raise ValueError(f"SparseInverseConv3d: input has {x.indices.shape[0]} sites but the SparseConv3d with "
                             f"indice_key={self.indice_key!r} produced {kmap.out_indices.shape[0]}")
        return self._convolve(x, kmap.pairs.flip(0), kmap.pair_offsets, kmap.in_indices, kmap.in_spatial_shape)
