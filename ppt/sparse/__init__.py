"""Sparse tensors on batched 1-, 2- and 3-D grids and the kernel-map cache the convolution layers share."""

from ppt.sparse.tensor import SPATIAL_DIMS, KernelMap, KernelMapCache, SparseTensor, check_spatial_dims

__all__ = ["SparseTensor", "KernelMap", "KernelMapCache", "SPATIAL_DIMS", "check_spatial_dims"]
