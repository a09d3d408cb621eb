// Torch-free launchers of the sparse-convolution CUDA kernels (kmap_cuda.cu, conv_cuda.cu). They
// take raw device pointers, sizes and a stream; the *_cuda.cpp glue validates, allocates with
// ATen and checks launch errors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ppt/common.h"
#include "ppt/sparse_conv.h"
#include "ppt/voxel.h"

namespace ppt {

// ---- kernel maps (kmap_cuda.cu) -------------------------------------------------------------

// keys[i] = packing.pack(indices[i]) for indices (n, 4) int32.
void launch_pack_keys(const int32_t* indices, int64_t n, VoxelPacking packing, int64_t* keys,
                      cudaStream_t stream);

// Inserts keys[i] -> i into the table (table_keys preset to kEmptyHashKey). Afterwards every key
// maps to its first (lowest) row, and *duplicate_row (device, preset to INT64_MAX) holds the
// lowest row whose key occurs at a lower row too (untouched when there is none), exactly what the
// sequential host insert reports.
void launch_build_hash_table(const int64_t* keys, int64_t n, int64_t* table_keys, int32_t* table_values,
                             int64_t capacity, int64_t* duplicate_row, cudaStream_t stream);

// map[k * n + o] = row of the neighbour of site indices[o] for offset k, or -1.
void launch_submanifold_map(const int32_t* indices, int64_t n, ConvGeometry geometry, VoxelPacking packing,
                            const int64_t* table_keys, const int32_t* table_values, int64_t capacity,
                            int32_t* map, cudaStream_t stream);

// candidates[k * n + i] = packed output site fed by indices[i] through offset k, or -1.
void launch_strided_candidates(const int32_t* indices, int64_t n, ConvGeometry geometry,
                               VoxelPacking out_packing, int64_t* candidates, cudaStream_t stream);

// rows[i] = row stored for keys[i], -1 when absent or keys[i] < 0.
void launch_hash_lookup(const int64_t* keys, int64_t count, const int64_t* table_keys,
                        const int32_t* table_values, int64_t capacity, int32_t* rows, cudaStream_t stream);

// sites (m, 4) int32 of packed keys (m,).
void launch_unpack_keys(const int64_t* keys, int64_t m, VoxelPacking packing, int32_t* sites,
                        cudaStream_t stream);

// ---- gather / scatter of feature rows (conv_cuda.cu) ----------------------------------------

// dst[p, :] = src[rows[p], :] for p < count; both (., channels) row-major of element kind `kind`.
void launch_gather_rows(const void* src, FloatKind kind, const int32_t* rows, int64_t count,
                        int64_t channels, void* dst, cudaStream_t stream);

// dst[rows[p], :] += src[p, :] with rows distinct, so no atomics are needed and the sum is
// deterministic. dst is float32 (src half, bfloat16 or float32) or float64 (src float64).
void launch_scatter_add_rows(const void* src, FloatKind src_kind, const int32_t* rows, int64_t count,
                             int64_t channels, void* dst, cudaStream_t stream);

}  // namespace ppt
