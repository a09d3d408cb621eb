"""Sparse convolution layers with spconv 2.x semantics and weight layout, on 1-, 2- and 3-D grids.

``weight`` has shape ``(out_channels, kx, ky, kz, in_channels)`` (``(out, kx, ky, in)`` in 2-D) like
spconv 2.x, so state_dicts of ``spconv.pytorch.SubMConv3d`` / ``SparseConv3d`` /
``SparseInverseConv3d`` / ``SparseConvTranspose3d`` (and their 1-D and 2-D twins) load unchanged
and give the same outputs (up to the order of strided output sites, which ppt sorts by
``(b, x, y, z)``). 1- and 2-D layers run on the 3-D kernel maps as grids one site deep along the
missing axes, which gives exactly the lower-dimensional convolution.

The generic classes (:class:`SubMConv`, :class:`SparseConv`, :class:`SparseConvTranspose`,
:class:`SparseInverseConv`) take the grid dimension from their ``ndim`` class attribute; a
dimension outside :data:`ppt.sparse.SPATIAL_DIMS` raises at construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ppt.nn.sparse_module import SparseModule
from ppt.ops._args import as_bool, as_int, as_int_tuple
from ppt.ops.sparse import sparse_conv
from ppt.sparse.tensor import KernelMap, SparseTensor, check_spatial_dims

__all__ = [
    "SubMConv", "SparseConv", "SparseConvTranspose", "SparseInverseConv",
    "SubMConv1d", "SubMConv2d", "SubMConv3d",
    "SparseConv1d", "SparseConv2d", "SparseConv3d",
    "SparseConvTranspose1d", "SparseConvTranspose2d", "SparseConvTranspose3d",
    "SparseInverseConv1d", "SparseInverseConv2d", "SparseInverseConv3d",
]


class _SparseConvBase(SparseModule):
    ndim: int

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], bias: bool,
                 indice_key: str | None) -> None:
        super().__init__()
        layer = type(self).__name__
        check_spatial_dims(layer, self.ndim)
        self.in_channels = as_int(in_channels, "in_channels", layer, minimum=1)
        self.out_channels = as_int(out_channels, "out_channels", layer, minimum=1)
        self.kernel_size = tuple(as_int_tuple(kernel_size, self.ndim, "kernel_size", layer, minimum=1))
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
        if x.ndim != self.ndim:
            raise ValueError(f"{type(self).__name__} expects a {self.ndim}-D sparse tensor (indices "
                             f"(N, {self.ndim + 1})), got a {x.ndim}-D one (spatial_shape {x.spatial_shape})")
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

    def _output(self, x: SparseTensor, out: Tensor, out_indices: Tensor,
                out_spatial_shape: tuple[int, ...]) -> SparseTensor:
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)  # under autocast, like conv3d: the output keeps the conv dtype
        return x.derive(out, out_indices, out_spatial_shape)

    def _convolve(self, x: SparseTensor, kmap: KernelMap, pairs: Tensor, out_indices: Tensor,
                  out_spatial_shape: tuple[int, ...]) -> SparseTensor:
        out = sparse_conv(x.features, self._weight_matrices(), pairs, kmap.pair_offsets, out_indices.shape[0])
        return self._output(x, out, out_indices, out_spatial_shape)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}, indice_key={self.indice_key!r}")


class _GeometricConv(_SparseConvBase):
    """A convolution that builds its own kernel map from ``stride``, ``padding`` and ``dilation``."""

    submanifold = False
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 indice_key=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias, indice_key)
        layer = type(self).__name__
        self.stride = tuple(as_int_tuple(stride, self.ndim, "stride", layer, minimum=1))
        self.padding = tuple(as_int_tuple(padding, self.ndim, "padding", layer, minimum=0))
        self.dilation = tuple(as_int_tuple(dilation, self.ndim, "dilation", layer, minimum=1))
        if self.submanifold and self.stride != (1,) * self.ndim:
            raise ValueError(f"{layer} requires stride 1, got {self.stride}")
        if self.submanifold and any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"{layer} needs odd kernel_size entries (a centred kernel), got {self.kernel_size}")

    def _uses_matmul_layout(self) -> bool:
        # spconv takes its matrix-product path for strided layers only at stride 1.
        return super()._uses_matmul_layout() and (self.submanifold or self.stride == (1,) * self.ndim)

    def kernel_map(self, x: SparseTensor) -> KernelMap:
        return x.cache.get_or_build(self.indice_key, x.indices, x.spatial_shape, x.batch_size, self.kernel_size,
                                    self.stride, self.padding, self.dilation, self.submanifold, self.transposed)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        if self.submanifold and math.prod(self.kernel_size) == 1:
            # Each site is its own only neighbour: a plain matrix product (spconv's path too), with
            # no kernel map to build or look up.
            out = x.features @ self.weight.reshape(self.in_channels, self.out_channels)
            return self._output(x, out, x.indices, x.spatial_shape)
        kmap = self.kernel_map(x)
        return self._convolve(x, kmap, kmap.pairs, kmap.out_indices, kmap.out_spatial_shape)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", stride={self.stride}, padding={self.padding}, dilation={self.dilation}")


class SubMConv(_GeometricConv):
    """Submanifold convolution: outputs at exactly the input sites, kernel centred on each site.

    As in spconv, ``padding`` does not change the result (the kernel is always centred: offset
    ``(i, j, l)`` reads the site at ``(i, j, l) - kernel_size // 2`` times ``dilation``).
    """

    submanifold = True


class SparseConv(_GeometricConv):
    """Strided sparse convolution: outputs at every site of the output grid
    ``floor((in + 2 p - d (k - 1) - 1) / s) + 1`` reached from an input site, sorted by
    ``(b, x, y, z)``. With ``indice_key`` set, a ``SparseInverseConv`` with the same key maps back.
    """


class SparseConvTranspose(_GeometricConv):
    """Transposed sparse convolution (spconv's ``SparseConvTranspose``), with the geometry of
    ``torch.nn.ConvTranspose3d``: input site ``i`` reaches ``i * stride - padding + offset * dilation``;
    outputs at every site of the grid ``(in - 1) s - 2 p + d (k - 1) + 1`` so reached, sorted by
    ``(b, x, y, z)``. The weight ``(out, kx, ky, kz, in)`` is spconv's; ``ConvTranspose3d``'s
    ``(in, out, kx, ky, kz)`` is ``weight.permute(4, 0, 1, 2, 3)``. With ``indice_key`` set, a
    ``SparseInverseConv`` with the same key maps back.

    spconv computes the output grid as ``(in - 1) s - 2 p + k``, which equals this one at
    ``dilation=1``; with ``dilation > 1`` ppt's grid is the dense layer's (larger by
    ``(d - 1)(k - 1)``), so no reached site falls off it.
    """

    transposed = True


class SparseInverseConv(_SparseConvBase):
    """Inverse of the ``SparseConv`` (or pooling or transposed conv) registered under ``indice_key``:
    outputs at that layer's input sites and spatial shape, using its kernel map with inputs and
    outputs swapped.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], indice_key: str,
                 bias: bool = True) -> None:
        if not indice_key:
            raise ValueError(f"{type(self).__name__} requires the indice_key of the SparseConv{self.ndim}d it inverts")
        super().__init__(in_channels, out_channels, kernel_size, bias, indice_key)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check_input(x)
        layer, source = type(self).__name__, f"SparseConv{self.ndim}d"
        kmap = x.cache.find(self.indice_key)
        if kmap is None:
            raise KeyError(f"{layer}: no {source} with indice_key={self.indice_key!r} (nor a pooling or transposed "
                           "conv) ran on this tensor's network pass; the inverse conv needs that layer's kernel map")
        if kmap.kernel_size != self.kernel_size:
            raise ValueError(f"{layer}: kernel_size {self.kernel_size} differs from the kernel_size "
                             f"{kmap.kernel_size} of the {source} with indice_key={self.indice_key!r}")
        if kmap.out_indices.shape != x.indices.shape:
            raise ValueError(f"{layer}: input has {x.indices.shape[0]} sites but the {source} with "
                             f"indice_key={self.indice_key!r} produced {kmap.out_indices.shape[0]}")
        return self._convolve(x, kmap, kmap.pairs.flip(0), kmap.in_indices, kmap.in_spatial_shape)


class SubMConv1d(SubMConv):
    ndim = 1


class SubMConv2d(SubMConv):
    ndim = 2


class SubMConv3d(SubMConv):
    ndim = 3


class SparseConv1d(SparseConv):
    ndim = 1


class SparseConv2d(SparseConv):
    ndim = 2


class SparseConv3d(SparseConv):
    ndim = 3


class SparseConvTranspose1d(SparseConvTranspose):
    ndim = 1


class SparseConvTranspose2d(SparseConvTranspose):
    ndim = 2


class SparseConvTranspose3d(SparseConvTranspose):
    ndim = 3


class SparseInverseConv1d(SparseInverseConv):
    ndim = 1


class SparseInverseConv2d(SparseInverseConv):
    ndim = 2


class SparseInverseConv3d(SparseInverseConv):
    ndim = 3
