"""``SparseTensor``: features on integer sites of a batched 1-, 2- or 3-D grid, plus a kernel-map cache.

The cache (:class:`KernelMapCache`) is shared by every tensor derived from one input (through
``replace_feature`` and the convolution layers), so a kernel map is built once per
``indice_key`` and reused by later layers with the same key and by the inverse convolution,
like spconv's ``indice_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ppt.ops import _reference
from ppt.ops._args import as_int, as_int_tuple
from ppt.ops.sparse import (
    conv_output_shape,
    conv_transpose_output_shape,
    sparse_kernel_map,
    sparse_transposed_kernel_map,
)

__all__ = ["SparseTensor", "KernelMap", "KernelMapCache", "SPATIAL_DIMS", "check_spatial_dims"]

SPATIAL_DIMS = (1, 2, 3)
"""The grid dimensions ppt's sparse tensors and layers support (1- and 2-D grids run on the 3-D
kernel maps as grids one site deep along the missing axes)."""


def check_spatial_dims(layer: str, ndim: int) -> None:
    """Raises unless a layer of ``ndim`` spatial dimensions is one ppt supports."""
    if ndim not in SPATIAL_DIMS:
        raise ValueError(f"{layer}: ppt's sparse layers support {', '.join(map(str, SPATIAL_DIMS[:-1]))} and "
                         f"{SPATIAL_DIMS[-1]} spatial dimensions, not {ndim}")


@dataclass(frozen=True)
class KernelMap:
    """A kernel map together with what it maps from and to."""

    in_indices: Tensor
    in_spatial_shape: tuple[int, ...]
    out_indices: Tensor
    out_spatial_shape: tuple[int, ...]
    pairs: Tensor  # (2, P) int32 [input rows; output rows]
    pair_offsets: Tensor  # (K + 1,) int64
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    submanifold: bool
    transposed: bool = False

    def geometry(self) -> tuple:
        return (self.kernel_size, self.stride, self.padding, self.dilation, self.submanifold, self.transposed)


def _as_3d(indices: Tensor, spatial_shape, kernel_size, stride, padding, dilation) -> tuple:
    """A 1- or 2-D problem as the 3-D one it equals: the missing axes one site deep, with a kernel of
    size 1, stride 1 and no padding along them (3-D input is returned as is)."""
    missing = 3 - (indices.shape[1] - 1)
    if not missing:
        return indices, spatial_shape, kernel_size, stride, padding, dilation
    ones, zeros = (1,) * missing, (0,) * missing
    return (torch.cat([indices, indices.new_zeros(indices.shape[0], missing)], 1), (*spatial_shape, *ones),
            (*kernel_size, *ones), (*stride, *ones), (*padding, *zeros), (*dilation, *ones))


class KernelMapCache:
    """Kernel maps of one network pass, keyed by ``(indice_key, submanifold)``.

    Layers without an ``indice_key`` use a key made of their geometry, so consecutive SubM layers
    of the same shape share a map too. An entry is reused only for the very input it was built
    from (same ``indices`` tensor object and spatial shape) and the same geometry. A lookup that
    hits is plain Python on the entry (no tensor data is read), so it traces under
    ``torch.compile`` without a graph break.
    """

    def __init__(self) -> None:
        self._maps: dict[tuple, KernelMap] = {}

    def get_or_build(self, key: str | None, indices: Tensor, spatial_shape: tuple[int, ...], batch_size: int,
                     kernel_size, stride, padding, dilation, submanifold: bool, transposed: bool = False) -> KernelMap:
        geometry = (tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation), bool(submanifold),
                    bool(transposed))
        cache_key = (key, submanifold) if key is not None else ("geometry", *geometry)
        cached = self._maps.get(cache_key)
        if (cached is not None and cached.in_indices is indices and cached.in_spatial_shape == spatial_shape
                and cached.geometry() == geometry):
            return cached
        if transposed:
            out_indices, pairs, pair_offsets = sparse_transposed_kernel_map(
                indices, batch_size, spatial_shape, kernel_size, stride, padding, dilation)
            out_shape = tuple(conv_transpose_output_shape(spatial_shape, kernel_size, stride, padding, dilation))
        else:
            sites, *geometry_3d = _as_3d(indices, spatial_shape, kernel_size, stride, padding, dilation)
            out_indices, pairs, pair_offsets = sparse_kernel_map(sites, batch_size, *geometry_3d, submanifold)
            if sites is not indices:
                out_indices = out_indices[:, :indices.shape[1]].contiguous()
            out_shape = spatial_shape if submanifold else tuple(
                conv_output_shape(spatial_shape, kernel_size, stride, padding, dilation))
        if submanifold:
            out_indices = indices  # the same object, so later layers recognise their input
        built = KernelMap(indices, spatial_shape, out_indices, out_shape, pairs, pair_offsets, *geometry)
        self._maps[cache_key] = built
        return built

    def find(self, key: str) -> KernelMap | None:
        """The strided or transposed (non-submanifold) map stored under ``key``, if any."""
        return self._maps.get((key, False))


class SparseTensor:
    """Features ``(N, C)`` at sites ``indices`` ``(N, 1 + D)`` int32 ``[b, x, y, z]`` (``[b, x, y]``
    on a 2-D grid, ``[b, x]`` on a 1-D one); ``D`` is one of :data:`SPATIAL_DIMS`.

    Args:
        features: ``(N, C)`` floating point.
        indices: ``(N, 1 + D)`` int32, distinct rows (checked when a kernel map is built).
        spatial_shape: grid ``(X, Y, Z)`` (``D`` entries); default ``indices[:, 1:].max(0) + 1``.
        batch_size: ``B``; default ``indices[:, 0].max() + 1``. Both defaults read the data, so
            pass them explicitly under ``torch.compile``.
        grid: spconv's pre-allocated grid buffer, accepted in its fifth place so that
            spconv's ``SparseConvTensor(features, indices, spatial_shape, batch_size, grid)`` runs
            unchanged; ppt's kernel maps need no grid, so it is only kept (as ``.grid``).
    """

    def __init__(self, features: Tensor, indices: Tensor, spatial_shape: Sequence[int] | None = None,
                 batch_size: int | None = None, grid: Tensor | None = None, *,
                 cache: KernelMapCache | None = None) -> None:
        if (features.dim() != 2 or indices.dim() != 2 or indices.shape[1] - 1 not in SPATIAL_DIMS
                or features.shape[0] != indices.shape[0]):
            raise ValueError("SparseTensor: features must be (N, C) and indices (N, 4) rows [b, x, y, z] (or (N, 3) / "
                             f"(N, 2) on a 2-/1-D grid) with the same N, got {tuple(features.shape)} and "
                             f"{tuple(indices.shape)}")
        if indices.dtype != torch.int32:
            raise TypeError(f"SparseTensor: indices must have dtype torch.int32, got {indices.dtype}")
        ndim = indices.shape[1] - 1
        if spatial_shape is None:
            spatial_shape = (indices[:, 1:].amax(0) + 1).tolist() if len(indices) else [1] * ndim
        if batch_size is None:
            batch_size = int(indices[:, 0].max()) + 1 if len(indices) else 1
        self.features = features
        self.indices = indices
        self.spatial_shape = tuple(as_int_tuple(spatial_shape, ndim, "spatial_shape", "SparseTensor", minimum=1))
        self.batch_size = as_int(batch_size, "batch_size", "SparseTensor", minimum=1)
        self.grid = grid
        self.cache = cache if cache is not None else KernelMapCache()

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions ``D`` of the grid."""
        return len(self.spatial_shape)

    def derive(self, features: Tensor, indices: Tensor, spatial_shape: tuple[int, ...]) -> SparseTensor:
        """A tensor of the same network pass on other sites (a layer's output): the batch size,
        kernel-map cache and grid are shared."""
        return SparseTensor(features, indices, spatial_shape, self.batch_size, self.grid, cache=self.cache)

    def replace_feature(self, features: Tensor) -> SparseTensor:
        """Same sites, spatial shape, batch size and cache with new ``features``.

        Like spconv, any row count is accepted (a network may pool to one row per scene and keep
        the tensor as a carrier); a layer given a tensor whose rows do not match its sites raises
        (:meth:`check_rows`).
        """
        if not isinstance(features, Tensor) or features.dim() != 2:
            raise ValueError("SparseTensor.replace_feature: features must be a (rows, C) tensor, got "
                             f"{tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__}")
        derived = object.__new__(SparseTensor)
        derived.features, derived.indices = features, self.indices
        derived.spatial_shape, derived.batch_size, derived.cache = self.spatial_shape, self.batch_size, self.cache
        derived.grid = self.grid
        return derived

    def check_rows(self, layer: str) -> None:
        """Raises unless there is one feature row per site (what every sparse layer needs)."""
        if self.features.shape[0] != self.indices.shape[0]:
            raise ValueError(f"{layer}: the SparseTensor has {self.features.shape[0]} feature rows but "
                             f"{self.indices.shape[0]} sites; replace_feature was given features of another "
                             "row count, which only non-sparse code can consume")

    @property
    def shape(self) -> torch.Size:
        """Shape ``(N, C)`` of ``features`` (with ``dtype`` and ``device``, what the data is)."""
        return self.features.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.features.dtype

    @property
    def device(self) -> torch.device:
        return self.features.device

    @property
    def spatial_size(self) -> int:
        """Number of grid cells ``X * Y * Z`` (spconv's name)."""
        return math.prod(self.spatial_shape)

    def to(self, *args, **kwargs) -> SparseTensor:
        """``features.to(*args, **kwargs)``; ``indices`` follow to the new device. The kernel-map
        cache is kept when the device is unchanged (a dtype cast) and started afresh otherwise."""
        features = self.features.to(*args, **kwargs)
        if features.device == self.indices.device:
            return self.replace_feature(features)
        return SparseTensor(features, self.indices.to(features.device), self.spatial_shape, self.batch_size)

    def cpu(self) -> SparseTensor:
        return self.to("cpu")

    def cuda(self, device: int | str | torch.device | None = None) -> SparseTensor:
        return self.to(torch.device("cuda") if device is None else torch.device("cuda", device)
                       if isinstance(device, int) else torch.device(device))

    def __add__(self, other: SparseTensor | Tensor) -> SparseTensor:
        """Feature sum on the same sites (spconv's ``x + y``)."""
        return self.replace_feature(self.features + (other.features if isinstance(other, SparseTensor) else other))

    __radd__ = __add__

    def dense(self, channels_first: bool = True) -> Tensor:
        """``(B, C, X, Y, Z)`` grid with zeros at inactive sites (differentiable); ``(B, X, Y, Z, C)``
        with ``channels_first=False`` (one spatial axis fewer per missing dimension in 1- and 2-D)."""
        self.check_rows("SparseTensor.dense")
        dense = _reference.sparse_to_dense(self.features, self.indices, self.batch_size, self.spatial_shape)
        return dense if channels_first else dense.movedim(1, -1)

    @classmethod
    def from_dense(cls, x: Tensor) -> SparseTensor:
        """Sites of a channel-last ``(B, X, Y, Z, C)`` grid (``(B, X, Y, C)`` in 2-D, ``(B, X, C)`` in
        1-D) where any channel is non-zero (spconv's convention), sorted by ``(b, x, y, z)``."""
        if not isinstance(x, Tensor) or x.dim() - 2 not in SPATIAL_DIMS:
            raise ValueError("SparseTensor.from_dense: x must be a channel-last (B, X, Y, Z, C) tensor (or "
                             "(B, X, Y, C) / (B, X, C)), got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        sparse = x.to_sparse(x.dim() - 1).coalesce()
        return cls(sparse.values(), sparse.indices().t().int().contiguous(), list(x.shape[1:-1]), x.shape[0])

    def __repr__(self) -> str:
        return (f"SparseTensor(features={tuple(self.features.shape)}, spatial_shape={self.spatial_shape}, "
                f"batch_size={self.batch_size}, dtype={self.features.dtype}, device={self.features.device})")
