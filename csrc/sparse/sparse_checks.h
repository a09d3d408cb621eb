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

// The row counts a kernel map connects: pairs[0] indexes num_in rows (called in_name in messages,
// e.g. "N" for the rows of features), pairs[1] indexes num_out rows.
struct PairRows {
  const char* in_name;
  int64_t num_in;
  int64_t num_out;
};

// pairs (2, P) int32 [input rows; output rows] with every row in range, grouped by pair_offsets
// (volume + 1,) int64 (any length >= 1 when volume < 0): starts at 0, ends at P, non-decreasing.
// Returns pair_offsets on the host.
std::vector<int64_t> check_pairs(const char* op, const at::Tensor& pairs, const at::Tensor& pair_offsets,
                                 int64_t volume, PairRows rows);

// features (N, Cin), weight (Cout, K, Cin), pairs (2, P) int32 [input rows; output rows],
// pair_offsets (K + 1,) int64 with offset k's pairs in [pair_offsets[k], pair_offsets[k+1]).
// Returns pair_offsets on the host.
std::vector<int64_t> check_conv_args(const char* op, const at::Tensor& features,
                                     const at::Tensor& weight, const at::Tensor& pairs,
                                     const at::Tensor& pair_offsets, int64_t num_out);

void check_conv_backward_grad(const at::Tensor& grad_out, const at::Tensor& features,
                              const at::Tensor& weight, int64_t num_out);

// sparse_max_pool / sparse_avg_pool: features (N, C) floating point on the device of pairs and
// pair_offsets, a kernel map from N rows to num_out rows. Returns pair_offsets on the host.
std::vector<int64_t> check_pool_args(const char* op, const at::Tensor& features, const at::Tensor& pairs,
                                     const at::Tensor& pair_offsets, int64_t num_out);

// The pooling backward ops: grad_out (M, C) floating point, argmax (M, C) int32 when defined (max
// pooling), a kernel map from num_in rows to M rows, all on one device. Returns pair_offsets on
// the host.
std::vector<int64_t> check_pool_backward_args(const char* op, const at::Tensor& grad_out, const at::Tensor& argmax,
                                              const at::Tensor& pairs, const at::Tensor& pair_offsets,
                                              int64_t num_in);

}  // namespace ppt
