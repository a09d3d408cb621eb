"""Fused operators of ppt. Every op dispatches to ``torch.ops.ppt.<name>`` (CPU or CUDA kernel);
pure-PyTorch references of each live in :mod:`ppt.ops._reference`. (``sparse_transposed_kernel_map``
is composed of PyTorch ops; ``conv_output_shape`` and ``conv_transpose_output_shape`` are arithmetic.)"""

from ppt.ops.norm import segment_batch_norm
from ppt.ops.point import farthest_point_sample, knn, voxelize
from ppt.ops.raster import rasterize_gaussians
from ppt.ops.serialization import serialization_decode, serialization_encode, serialize
from ppt.ops.sparse import (
    conv_output_shape,
    conv_transpose_output_shape,
    sparse_conv,
    sparse_kernel_map,
    sparse_transposed_kernel_map,
)
from ppt.ops.sparse_pool import sparse_avg_pool, sparse_max_pool

__all__ = [
    "voxelize",
    "farthest_point_sample",
    "knn",
    "sparse_kernel_map",
    "sparse_transposed_kernel_map",
    "sparse_conv",
    "conv_output_shape",
    "conv_transpose_output_shape",
    "segment_batch_norm",
    "rasterize_gaussians",
    "sparse_max_pool",
    "sparse_avg_pool",
    "serialization_encode",
    "serialization_decode",
    "serialize",
]
