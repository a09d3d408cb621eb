"""PyTorch modules of ppt, thin layers over the fused ops of :mod:`ppt.ops`."""

from ppt.nn.pdnorm import PDNorm
from ppt.nn.renderer import GaussianRenderer
from ppt.nn.sparse_conv import SparseConv3d, SparseInverseConv3d, SubMConv3d
from ppt.nn.sparse_module import SparseModule, SparseSequential
from ppt.nn.sparse_pool import SparseAvgPool3d, SparseMaxPool3d

__all__ = [
    "SubMConv3d",
    "SparseConv3d",
    "SparseInverseConv3d",
    "SparseModule",
    "SparseSequential",
    "PDNorm",
    "GaussianRenderer",
    "SparseMaxPool3d",
    "SparseAvgPool3d",
]
