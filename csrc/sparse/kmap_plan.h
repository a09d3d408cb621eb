// Kernel-map construction shared by the CPU and CUDA implementations of sparse_kernel_map. The
// device-specific steps (hashing, neighbour search) are supplied as a KernelMapBackend; the
// orchestration and the order-preserving compaction into per-offset pair lists are device-agnostic
// ATen code, so both devices produce identical, deterministic maps.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "ppt/sparse_conv.h"
#include "ppt/voxel.h"

namespace ppt {

struct KernelMapBackend {
  // (N,) int64 packed keys of indices (N, 4) int32.
  at::Tensor (*pack_keys)(const at::Tensor& indices, const VoxelPacking& packing);
  // Fills a hash table (table_keys preset to kEmptyHashKey) with keys[row] -> row; returns the
  // lowest row whose key was already present, or -1.
  int64_t (*build_table)(const at::Tensor& keys, at::Tensor& table_keys, at::Tensor& table_values);
  // (K, N) int32: input row of the neighbour of output site indices[o] for offset k, or -1.
  at::Tensor (*submanifold_map)(const at::Tensor& indices, const ConvGeometry& geometry,
                                const VoxelPacking& packing, const at::Tensor& table_keys,
                                const at::Tensor& table_values);
  // (K, N) int64: packed key of the output site fed by input site indices[i] through offset k,
  // or -1 when that output lies outside the output grid or off the stride.
  at::Tensor (*strided_candidates)(const at::Tensor& indices, const ConvGeometry& geometry,
                                   const VoxelPacking& out_packing);
  // Same shape as keys, int32: row stored for each key, -1 for absent or negative keys.
  at::Tensor (*lookup)(const at::Tensor& keys, const at::Tensor& table_keys,
                       const at::Tensor& table_values);
  // (M, 4) int32 sites of packed keys (M,).
  at::Tensor (*unpack_keys)(const at::Tensor& keys, const VoxelPacking& packing);
};

// Returns (out_indices (M, 4) int32, pairs (2, P) int32 [input rows; output rows],
// pair_offsets (K + 1,) int64). Pairs are grouped by kernel offset and, within an offset, ordered
// by output row (submanifold) or input row (strided); strided output sites are sorted by
// (b, x, y, z).
std::tuple<at::Tensor, at::Tensor, at::Tensor> build_kernel_map(
    const KernelMapBackend& backend, const at::Tensor& indices, int64_t batch_size,
    at::IntArrayRef spatial_shape, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool submanifold);

}  // namespace ppt
