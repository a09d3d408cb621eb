"""spconv 2.x drop-in: ``import ppt.spconv as spconv`` in place of ``import spconv.pytorch as spconv``.

Model files written for spconv (Pointcept's SpUNet-v1m1 / v1m3, ...) run unchanged on ppt's
kernels, and their state_dicts load as they are (same parameter names and weight layout, including
spconv's kernel-volume-1 layout). The layers accept spconv's constructor arguments; the ones that
select spconv's internal algorithms (``algo``, ``fp32_accum``, ``large_kernel_fast_algo``,
``record_voxel_count``, ``name``) are accepted and have no effect, and ``groups`` must be 1 (as in
spconv 2.x). What differs from spconv is listed in docs/ops.md, "Porting from spconv".
"""

from __future__ import annotations

from torch import nn

from ppt import nn as _ppt_nn
from ppt.nn.sparse_module import SparseModule, SparseSequential
from ppt.sparse import SparseTensor

__all__ = [
    "SparseConvTensor",
    "SubMConv3d",
    "SparseConv3d",
    "SparseInverseConv3d",
    "SparseMaxPool3d",
    "SparseAvgPool3d",
    "SparseModule",
    "SparseSequential",
    "Identity",
    "SparseBatchNorm",
    "SparseReLU",
    "SparseIdentity",
    "ToDense",
]

SparseConvTensor = SparseTensor
# spconv's Identity is a plain module: in a SparseSequential it receives the features.
Identity = nn.Identity


def _check_spconv_only(layer: str, groups: int) -> None:
    if groups != 1:
        raise ValueError(f"{layer}: groups must be 1 (spconv 2.x supports no grouped sparse convolution), got {groups}")


class SubMConv3d(_ppt_nn.SubMConv3d):
    """``spconv.pytorch.SubMConv3d`` on ppt's kernels."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 indice_key=None, algo=None, fp32_accum=None, large_kernel_fast_algo=False, name=None):
        _check_spconv_only(type(self).__name__, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, indice_key)


class SparseConv3d(_ppt_nn.SparseConv3d):
    """``spconv.pytorch.SparseConv3d`` on ppt's kernels."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 indice_key=None, algo=None, fp32_accum=None, record_voxel_count=False,
                 large_kernel_fast_algo=False, name=None):
        _check_spconv_only(type(self).__name__, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, indice_key)


class SparseInverseConv3d(_ppt_nn.SparseInverseConv3d):
    """``spconv.pytorch.SparseInverseConv3d`` on ppt's kernels."""

    def __init__(self, in_channels, out_channels, kernel_size, indice_key, bias=True, algo=None, fp32_accum=None,
                 large_kernel_fast_algo=False, name=None):
        super().__init__(in_channels, out_channels, kernel_size, indice_key, bias)


class SparseMaxPool3d(_ppt_nn.SparseMaxPool3d):
    """``spconv.pytorch.SparseMaxPool3d`` on ppt's kernels."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, indice_key=None, algo=None,
                 record_voxel_count=False, name=None):
        super().__init__(kernel_size, stride, padding, dilation, indice_key)


class SparseAvgPool3d(_ppt_nn.SparseAvgPool3d):
    """``spconv.pytorch.SparseAvgPool3d`` on ppt's kernels (CPU and CUDA; spconv's is CUDA-only)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, indice_key=None, algo=None,
                 record_voxel_count=False, name=None):
        super().__init__(kernel_size, stride, padding, dilation, indice_key)


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
