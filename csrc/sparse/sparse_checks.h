// Argument validation of the sparse-convolution ops, shared by the CPU and CUDA implementations.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "ppt/sparse_conv.h"
#include "ppt/voxel.h"

namespace ppt {

// Checks indices (N, 4) int32 [b, x, y, z] against batch_size and spatial_shape and the layer
// parameters, and returns the convolution geometry (output spatial shape included).
ConvGeometry check_kernel_map_args(const at::Tensor& indices, int64_t batch_size,
                                   at::IntArrayRef spatial_shape, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, bool submanifold);

// Row-major (b, x, y, z) packing over batch_size x extent; the caller checked it fits 63 bits.
VoxelPacking site_packing(const int64_t* extent);

// Raised when the hash table build found indices[row] already present.
[[noreturn]] void fail_duplicate_site(const at::Tensor& indices, int64_t row);

// features (N, Cin), weight (Cout, K, Cin), pairs (2, P) int32 [input rows; output rows],
// pair_offsets (K + 1,) int64 with offset k's pairs in [pair_offsets[k], pair_offsets[k+1]).
// Returns pair_offsets on the host.
std::vector<int64_t> check_conv_args(const char* op, const at::Tensor& features,
                                     const at::Tensor& weight, const at::Tensor& pairs,
                                     const at::Tensor& pair_offsets, int64_t num_out);

void check_conv_backward_grad(const at::Tensor& grad_out, const at::Tensor& features,
                              const at::Tensor& weight, int64_t num_out);

}  // namespace ppt
