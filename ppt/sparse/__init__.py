"""Sparse tensors on batched 3-D grids and the kernel-map cache the convolution layers share."""

from ppt.sparse.tensor import KernelMap, KernelMapCache, SparseTensor

__all__ = ["SparseTensor", "KernelMap", "KernelMapCache"]
