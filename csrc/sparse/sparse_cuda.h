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

// ---- pooling over a kernel map (pool_cuda.cu) ------------------------------------------------
// pairs (2, num_pairs) int32 row-major [input rows; output rows], grouped by kernel offset through
// host_offsets (volume + 1 entries, on the host); features / gradients (rows, channels) row-major
// of element kind `kind`. Accumulators are float32 for half kinds and float64 for float64.

// Max pooling: out (num_out, channels) of `kind` preset to 0 and argmax preset to -1; afterwards
// out holds the maximum over each output's pairs and argmax the input row that won (ties to the
// lowest offset, NaN propagating: ppt/sparse_pool.h).
void launch_sparse_max_pool(const void* features, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                            const int64_t* host_offsets, int64_t volume, int64_t channels, void* out,
                            int32_t* argmax, cudaStream_t stream);

// grad_in (num_in, channels) accumulator, preset to 0: grad_in[i, c] += grad_out[o, c] for each
// pair (i, o) with argmax[o, c] == i.
void launch_sparse_max_pool_backward(const void* grad_out, FloatKind kind, const int32_t* argmax,
                                     const int32_t* pairs, int64_t num_pairs, const int64_t* host_offsets,
                                     int64_t volume, int64_t channels, void* grad_in, cudaStream_t stream);

// Sums of average pooling: sums (num_out, channels) accumulator, preset to 0:
// sums[o, :] += features[i, :] for each pair (i, o).
void launch_sparse_pool_sums(const void* features, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                             const int64_t* host_offsets, int64_t volume, int64_t channels, void* sums,
                             cudaStream_t stream);

// grad_in (num_in, channels) accumulator, preset to 0: grad_in[i, :] += grad_out[o, :] / counts[o]
// for each pair (i, o), counts (num_out,) int64 being the number of pairs of each output row.
void launch_sparse_avg_pool_backward(const void* grad_out, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                                     const int64_t* host_offsets, int64_t volume, int64_t channels,
                                     const int64_t* counts, void* grad_in, cudaStream_t stream);

}  // namespace ppt
