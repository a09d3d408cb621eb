"""PyTorch modules of ppt, thin layers over the fused ops of :mod:`ppt.ops`."""

from ppt.nn.losses import lovasz_softmax
from ppt.nn.pdnorm import PDNorm
from ppt.nn.renderer import GaussianRenderer
from ppt.nn.sparse_conv import (
    SparseConv1d,
    SparseConv2d,
    SparseConv3d,
    SparseConvTranspose1d,
    SparseConvTranspose2d,
    SparseConvTranspose3d,
    SparseInverseConv1d,
    SparseInverseConv2d,
    SparseInverseConv3d,
    SubMConv1d,
    SubMConv2d,
    SubMConv3d,
)
from ppt.nn.sparse_module import SparseModule, SparseSequential
from ppt.nn.sparse_pool import (
    SparseAvgPool1d,
    SparseAvgPool2d,
    SparseAvgPool3d,
    SparseGlobalAvgPool,
    SparseGlobalMaxPool,
    SparseMaxPool1d,
    SparseMaxPool2d,
    SparseMaxPool3d,
)

__all__ = [
    "SubMConv3d",
    "SparseConv3d",
    "SparseInverseConv3d",
    "SparseConvTranspose3d",
    "SubMConv2d",
    "SparseConv2d",
    "SparseInverseConv2d",
    "SparseConvTranspose2d",
    "SubMConv1d",
    "SparseConv1d",
    "SparseInverseConv1d",
    "SparseConvTranspose1d",
    "SparseModule",
    "SparseSequential",
    "PDNorm",
    "GaussianRenderer",
    "SparseMaxPool3d",
    "SparseAvgPool3d",
    "SparseMaxPool2d",
    "SparseAvgPool2d",
    "SparseMaxPool1d",
    "SparseAvgPool1d",
    "SparseGlobalMaxPool",
    "SparseGlobalAvgPool",
    "lovasz_softmax",
]
