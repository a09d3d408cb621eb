// Torch-free launchers of the point-op CUDA kernels (implemented in *_cuda.cu). Buffers are raw
// device pointers; FloatKind tells the element type of `void*` coordinate buffers. `acc` buffers
// hold float32 for half/bfloat16 inputs and the input type otherwise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "ppt/common.h"
#include "ppt/serialization.h"
#include "ppt/voxel.h"

namespace ppt::cuda {

// ---- voxelize ----------------------------------------------------------------------------------
// grid[i] = floor(coord[i] / voxel_size); *first_invalid (preset to n) becomes the lowest index of
// a point whose grid index is not finite/representable.
void voxelize_grid(FloatKind kind, const void* coord, int64_t n, double voxel_size, int64_t* grid,
                   unsigned long long* first_invalid, cudaStream_t stream);
// Per-scene min/max of grid (lower preset to INT64_MAX, upper to INT64_MIN). batch may be null.
void voxelize_bounds(const int64_t* grid, const int64_t* batch, int64_t n, int64_t* lower,
                     int64_t* upper, cudaStream_t stream);
// Bytes of CUB temporary storage voxelize_unique needs for n points and keys of key_bits bits.
size_t voxelize_temp_bytes(int64_t n, int key_bits);
// Packs keys, radix-sorts (key, point) pairs on the low key_bits bits and segments equal keys:
// inverse[i] = rank of point i's voxel, unique_keys[r] / counts[r] (counts zeroed by the caller)
// for the r-th voxel in sorted order, *num_unique = M. Scratch: keys_a/keys_b/order_a/order_b/
// segment of n elements each and temp of voxelize_temp_bytes(n) bytes.
void voxelize_unique(const int64_t* grid, const int64_t* batch, const int64_t* lower, int64_t n,
                     VoxelPacking packing, int key_bits, uint64_t* keys_a, uint64_t* keys_b,
                     int64_t* order_a, int64_t* order_b, int64_t* segment, void* temp,
                     size_t temp_bytes, int64_t* inverse, int64_t* unique_keys, int64_t* counts,
                     int64_t* num_unique, cudaStream_t stream);
// voxel_coords[r] = unpack(unique_keys[r]) as int32 [b, x, y, z].
void voxelize_decode(const int64_t* unique_keys, int64_t m, VoxelPacking packing,
                     int32_t* voxel_coords, cudaStream_t stream);

// ---- farthest point sampling -----------------------------------------------------------------
// min_dist: scratch of batches * n acc elements.
void farthest_point_sample(FloatKind kind, const void* xyz, int64_t batches, int64_t n,
                           int64_t num_samples, int64_t start_index, void* min_dist, int64_t* out,
                           cudaStream_t stream);

// ---- kNN ---------------------------------------------------------------------------------------
// dist_acc: (batches, m, k) acc buffer receiving squared distances; index: (batches, m, k).
void knn(FloatKind kind, const void* query, const void* points, int64_t batches, int64_t m,
         int64_t n, int64_t k, void* dist_acc, int64_t* index, cudaStream_t stream);
// grad_query and grad_points_acc are acc buffers; grad_points_acc must be zeroed (atomic adds).
void knn_backward(FloatKind kind, const void* grad_dist2, const void* query, const void* points,
                  const int64_t* index, int64_t batches, int64_t m, int64_t n, int64_t k,
                  void* grad_query, void* grad_points_acc, cudaStream_t stream);

// ---- serialization (PTv3 space-filling curves, ppt/serialization.h) ---------------------------
// code[i] of grid point i (grid int32 if grid_is_int32, else int64; batch may be null).
void serialization_encode(const void* grid, bool grid_is_int32, const int64_t* batch, int64_t n, int depth,
                          SerializationCurve curve, bool transposed, int64_t* code, cudaStream_t stream);
// grid (n, 3) and batch (n,) of each code.
void serialization_decode(const int64_t* code, int64_t n, int depth, SerializationCurve curve, bool transposed,
                          int64_t* grid, int64_t* batch, cudaStream_t stream);

}  // namespace ppt::cuda
