"""Neural-network modules of ppt."""

from ppt.nn.sparse_conv import SparseConv3d, SparseInverseConv3d, SubMConv3d

__all__ = ["SubMConv3d", "SparseConv3d", "SparseInverseConv3d"]
