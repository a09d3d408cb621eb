"""PyTorch modules of ppt, thin layers over the fused ops of :mod:`ppt.ops`."""

from ppt.nn.pdnorm import PDNorm
from ppt.nn.renderer import GaussianRenderer
from ppt.nn.sparse_conv import SparseConv3d, SparseInverseConv3d, SubMConv3d
from ppt.nn.sparse_module import SparseModule, SparseSequential

__all__ = [
    "SubMConv3d",
    "SparseConv3d",
    "SparseInverseConv3d",
    "SparseModule",
    "SparseSequential",
    "PDNorm",
    "GaussianRenderer",
]
