"""spconv 2.x drop-in: ``import ppt.spconv as spconv`` in place of ``import spconv.pytorch as spconv``.

Model files written for spconv (Pointcept's SpUNet-v1m1 / v1m3, BEV detection backbones, ...) run
unchanged on ppt's kernels, and their state_dicts load as they are (same parameter names and weight
layout, including spconv's kernel-volume-1 layout). The layers take spconv's constructor arguments;
``algo`` must be a :class:`ConvAlgo` (or spconv's own enum member of the same name) and is recorded
as ``layer.algo``; it and the other arguments that tune spconv's internal algorithms
(``fp32_accum``, ``large_kernel_fast_algo``, ``record_voxel_count``, ``name``) do not change the
result, as ppt has one engine. ``groups`` must be 1 (as in spconv 2.x). 1-, 2- and 3-D layers are
provided; the 4-D ones raise at construction. The voxel generator is :mod:`ppt.spconv.utils`
(``PointToVoxel``). What differs from spconv is listed in docs/spconv.md.
"""

from __future__ import annotations

import enum

from torch import nn

from ppt.nn import sparse_conv as _conv
from ppt.nn import sparse_pool as _pool
from ppt.nn.sparse_module import SparseModule, SparseSequential
from ppt.sparse import SparseTensor
from ppt.spconv import utils
from ppt.spconv.tables import AddTable, ConcatTable, JoinTable

__all__ = [
    "ConvAlgo",
    "SparseConvTensor",
    "SubMConv1d", "SubMConv2d", "SubMConv3d", "SubMConv4d",
    "SparseConv1d", "SparseConv2d", "SparseConv3d", "SparseConv4d",
    "SparseConvTranspose1d", "SparseConvTranspose2d", "SparseConvTranspose3d", "SparseConvTranspose4d",
    "SparseInverseConv1d", "SparseInverseConv2d", "SparseInverseConv3d", "SparseInverseConv4d",
    "SparseMaxPool1d", "SparseMaxPool2d", "SparseMaxPool3d", "SparseMaxPool4d",
    "SparseAvgPool1d", "SparseAvgPool2d", "SparseAvgPool3d",
    "SparseGlobalMaxPool", "SparseGlobalAvgPool",
    "SparseModule",
    "SparseSequential",
    "AddTable", "ConcatTable", "JoinTable",
    "Identity",
    "SparseBatchNorm",
    "SparseReLU",
    "SparseIdentity",
    "ToDense",
    "RemoveGrid",
    "utils",
]

SparseConvTensor = SparseTensor
# spconv's Identity is a plain module: in a SparseSequential it receives the features.
Identity = nn.Identity


class ConvAlgo(enum.Enum):
    """spconv's convolution algorithms (``spconv.core.ConvAlgo``), for the ``algo=`` argument of
    the layers. ppt runs every layer on its own kernels whatever the choice."""

    Native = 0
    MaskImplicitGemm = 1
    MaskSplitImplicitGemm = 2


def _as_algo(algo, layer: str) -> ConvAlgo:
    """``algo`` as a :class:`ConvAlgo`: ``None`` is ``Native`` (spconv's choice on CPU), and a
    member of spconv's own ``ConvAlgo`` maps to ppt's member of the same name."""
    if algo is None:
        return ConvAlgo.Native
    if isinstance(algo, enum.Enum) and algo.name in ConvAlgo.__members__:
        return ConvAlgo[algo.name]
    raise TypeError(f"{layer}: algo must be None or a ConvAlgo ({', '.join(ConvAlgo.__members__)}), got "
                    f"{type(algo).__name__} {algo!r}")


def _check_groups(layer: str, groups: int) -> None:
    if groups != 1:
        raise ValueError(f"{layer}: groups must be 1 (spconv 2.x supports no grouped sparse convolution), got {groups}")


class _SubMArguments:
    """spconv's ``SubMConvNd`` constructor."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 indice_key=None, algo=None, fp32_accum=None, large_kernel_fast_algo=False, name=None):
        _check_groups(type(self).__name__, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, indice_key)
        self.algo = _as_algo(algo, type(self).__name__)


class _ConvArguments:
    """spconv's ``SparseConvNd`` / ``SparseConvTransposeNd`` constructor."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 indice_key=None, algo=None, fp32_accum=None, record_voxel_count=False,
                 large_kernel_fast_algo=False, name=None):
        _check_groups(type(self).__name__, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, indice_key)
        self.algo = _as_algo(algo, type(self).__name__)


class _InverseArguments:
    """spconv's ``SparseInverseConvNd`` constructor."""

    def __init__(self, in_channels, out_channels, kernel_size, indice_key, bias=True, algo=None, fp32_accum=None,
                 large_kernel_fast_algo=False, name=None):
        super().__init__(in_channels, out_channels, kernel_size, indice_key, bias)
        self.algo = _as_algo(algo, type(self).__name__)


class _PoolArguments:
    """spconv's ``SparseMaxPoolNd`` / ``SparseAvgPoolNd`` constructor."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, indice_key=None, algo=None,
                 record_voxel_count=False, name=None):
        super().__init__(kernel_size, stride, padding, dilation, indice_key)
        self.algo = _as_algo(algo, type(self).__name__)


class SubMConv1d(_SubMArguments, _conv.SubMConv1d):
    """``spconv.pytorch.SubMConv1d`` on ppt's kernels."""


class SubMConv2d(_SubMArguments, _conv.SubMConv2d):
    """``spconv.pytorch.SubMConv2d`` on ppt's kernels."""


class SubMConv3d(_SubMArguments, _conv.SubMConv3d):
    """``spconv.pytorch.SubMConv3d`` on ppt's kernels."""


class SubMConv4d(_SubMArguments, _conv.SubMConv):
    """``spconv.pytorch.SubMConv4d``: not supported by ppt (raises at construction)."""

    ndim = 4


class SparseConv1d(_ConvArguments, _conv.SparseConv1d):
    """``spconv.pytorch.SparseConv1d`` on ppt's kernels."""


class SparseConv2d(_ConvArguments, _conv.SparseConv2d):
    """``spconv.pytorch.SparseConv2d`` on ppt's kernels."""


class SparseConv3d(_ConvArguments, _conv.SparseConv3d):
    """``spconv.pytorch.SparseConv3d`` on ppt's kernels."""


class SparseConv4d(_ConvArguments, _conv.SparseConv):
    """``spconv.pytorch.SparseConv4d``: not supported by ppt (raises at construction)."""

    ndim = 4


class SparseConvTranspose1d(_ConvArguments, _conv.SparseConvTranspose1d):
    """``spconv.pytorch.SparseConvTranspose1d`` on ppt's kernels."""


class SparseConvTranspose2d(_ConvArguments, _conv.SparseConvTranspose2d):
    """``spconv.pytorch.SparseConvTranspose2d`` on ppt's kernels."""


class SparseConvTranspose3d(_ConvArguments, _conv.SparseConvTranspose3d):
    """``spconv.pytorch.SparseConvTranspose3d`` on ppt's kernels."""


class SparseConvTranspose4d(_ConvArguments, _conv.SparseConvTranspose):
    """``spconv.pytorch.SparseConvTranspose4d``: not supported by ppt (raises at construction)."""

    ndim = 4


class SparseInverseConv1d(_InverseArguments, _conv.SparseInverseConv1d):
    """``spconv.pytorch.SparseInverseConv1d`` on ppt's kernels."""


class SparseInverseConv2d(_InverseArguments, _conv.SparseInverseConv2d):
    """``spconv.pytorch.SparseInverseConv2d`` on ppt's kernels."""


class SparseInverseConv3d(_InverseArguments, _conv.SparseInverseConv3d):
    """``spconv.pytorch.SparseInverseConv3d`` on ppt's kernels."""


class SparseInverseConv4d(_InverseArguments, _conv.SparseInverseConv):
    """``spconv.pytorch.SparseInverseConv4d``: not supported by ppt (raises at construction)."""

    ndim = 4


class SparseMaxPool1d(_PoolArguments, _pool.SparseMaxPool1d):
    """``spconv.pytorch.SparseMaxPool1d`` on ppt's kernels."""


class SparseMaxPool2d(_PoolArguments, _pool.SparseMaxPool2d):
    """``spconv.pytorch.SparseMaxPool2d`` on ppt's kernels."""


class SparseMaxPool3d(_PoolArguments, _pool.SparseMaxPool3d):
    """``spconv.pytorch.SparseMaxPool3d`` on ppt's kernels."""


class SparseMaxPool4d(_PoolArguments, _pool.SparseMaxPool):
    """``spconv.pytorch.SparseMaxPool4d``: not supported by ppt (raises at construction)."""

    ndim = 4


class SparseAvgPool1d(_PoolArguments, _pool.SparseAvgPool1d):
    """``spconv.pytorch.SparseAvgPool1d`` on ppt's kernels (CPU and CUDA; spconv's is CUDA-only)."""


class SparseAvgPool2d(_PoolArguments, _pool.SparseAvgPool2d):
    """``spconv.pytorch.SparseAvgPool2d`` on ppt's kernels (CPU and CUDA; spconv's is CUDA-only)."""


class SparseAvgPool3d(_PoolArguments, _pool.SparseAvgPool3d):
    """``spconv.pytorch.SparseAvgPool3d`` on ppt's kernels (CPU and CUDA; spconv's is CUDA-only)."""


class SparseGlobalMaxPool(_pool.SparseGlobalMaxPool):
    """``spconv.pytorch.SparseGlobalMaxPool``: ``(B, C)`` per-scene maxima."""

    def __init__(self, name=None):
        super().__init__()


class SparseGlobalAvgPool(_pool.SparseGlobalAvgPool):
    """``spconv.pytorch.SparseGlobalAvgPool``: ``(B, C)`` per-scene means."""

    def __init__(self, name=None):
        super().__init__()


class _FeatureModule:
    """Applies the torch layer to a SparseTensor's features (spconv's Sparse* wrappers of torch layers)."""

    def forward(self, input):
        if isinstance(input, SparseTensor):
            return input.replace_feature(super().forward(input.features))
        return super().forward(input)


class SparseBatchNorm(_FeatureModule, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that also takes a SparseTensor."""


class SparseReLU(_FeatureModule, nn.ReLU):
    """``nn.ReLU`` that also takes a SparseTensor."""


class SparseIdentity(_FeatureModule, nn.Identity):
    """``nn.Identity`` that also takes a SparseTensor."""


class ToDense(SparseModule):
    """The ``(B, C, X, Y, Z)`` dense grid of a SparseTensor."""

    def forward(self, x: SparseTensor):
        return x.dense()


class RemoveGrid(SparseModule):
    """Drops the tensor's ``grid`` buffer (``x.grid = None``) and returns the tensor, as spconv's."""

    def forward(self, x: SparseTensor):
        x.grid = None
        return x
