// CUDA voxelize: grid indices and per-scene bounds by atomics, then a CUB radix sort of
// (packed key, point) pairs restricted to the significant key bits and a scan that segments
// equal keys into voxels.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>

#include "point/point_cuda.h"
#include "ppt/cuda_float.cuh"
#include "ppt/cuda_launch.cuh"

namespace ppt::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void grid_kernel(const T* coord, int64_t n, double voxel_size, int64_t* grid,
                            unsigned long long* first_invalid) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    for (int a = 0; a < 3; ++a) {
      if (!grid_index(static_cast<double>(coord[3 * i + a]), voxel_size, &grid[3 * i + a])) {
        atomicMin(first_invalid, static_cast<unsigned long long>(i));
      }
    }
  }
}

__global__ void bounds_kernel(const int64_t* grid, const int64_t* batch, int64_t n, int64_t* lower,
                              int64_t* upper) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = batch ? batch[i] : 0;
    for (int a = 0; a < 3; ++a) {
      const long long g = grid[3 * i + a];
      atomicMin(reinterpret_cast<long long*>(&lower[3 * b + a]), g);
      atomicMax(reinterpret_cast<long long*>(&upper[3 * b + a]), g);
    }
  }
}

__global__ void pack_kernel(const int64_t* grid, const int64_t* batch, const int64_t* lower, int64_t n,
                            VoxelPacking packing, uint64_t* keys, int64_t* order) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = batch ? batch[i] : 0;
    const int64_t* g = grid + 3 * i;
    const int64_t* lo = lower + 3 * b;
    keys[i] = static_cast<uint64_t>(packing.pack(b, g[0] - lo[0], g[1] - lo[1], g[2] - lo[2]));
    order[i] = i;
  }
}

__global__ void boundary_kernel(const uint64_t* sorted_keys, int64_t n, int64_t* is_first) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    is_first[i] = (i == 0 || sorted_keys[i] != sorted_keys[i - 1]) ? 1 : 0;
  }
}

// segment[i] is the 1-based voxel rank of the i-th sorted point (inclusive scan of is_first).
__global__ void scatter_kernel(const uint64_t* sorted_keys, const int64_t* sorted_points,
                               const int64_t* segment, int64_t n, int64_t* inverse,
                               int64_t* unique_keys, int64_t* counts, int64_t* num_unique) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t rank = segment[i] - 1;
    inverse[sorted_points[i]] = rank;
    if (i == 0 || sorted_keys[i] != sorted_keys[i - 1]) unique_keys[rank] = static_cast<int64_t>(sorted_keys[i]);
    atomicAdd(reinterpret_cast<unsigned long long*>(&counts[rank]), 1ULL);
    if (i == n - 1) *num_unique = rank + 1;
  }
}

__global__ void decode_kernel(const int64_t* unique_keys, int64_t m, VoxelPacking packing, int32_t* voxel_coords) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < m; r += int64_t(gridDim.x) * blockDim.x) {
    packing.unpack(unique_keys[r], voxel_coords + 4 * r);
  }
}

}  // namespace

void voxelize_grid(FloatKind kind, const void* coord, int64_t n, double voxel_size, int64_t* grid,
                   unsigned long long* first_invalid, cudaStream_t stream) {
  dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PPT_LAUNCH(grid_kernel<T>, grid_size(n, kThreads), kThreads, 0, stream)(static_cast<const T*>(coord), n,
                                                                   voxel_size, grid, first_invalid);
  });
}

void voxelize_bounds(const int64_t* grid, const int64_t* batch, int64_t n, int64_t* lower,
                     int64_t* upper, cudaStream_t stream) {
  PPT_LAUNCH(bounds_kernel, grid_size(n, kThreads), kThreads, 0, stream)(grid, batch, n, lower, upper);
}

size_t voxelize_temp_bytes(int64_t n, int key_bits) {
  size_t sort_bytes = 0, scan_bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, static_cast<const uint64_t*>(nullptr),
                                  static_cast<uint64_t*>(nullptr), static_cast<const int64_t*>(nullptr),
                                  static_cast<int64_t*>(nullptr), n, 0, key_bits);
  cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, static_cast<const int64_t*>(nullptr),
                                static_cast<int64_t*>(nullptr), n);
  return std::max(sort_bytes, scan_bytes);
}

void voxelize_unique(const int64_t* grid, const int64_t* batch, const int64_t* lower, int64_t n,
                     VoxelPacking packing, int key_bits, uint64_t* keys_a, uint64_t* keys_b,
                     int64_t* order_a, int64_t* order_b, int64_t* segment, void* temp,
                     size_t temp_bytes, int64_t* inverse, int64_t* unique_keys, int64_t* counts,
                     int64_t* num_unique, cudaStream_t stream) {
  const unsigned blocks = grid_size(n, kThreads);
  PPT_LAUNCH(pack_kernel, blocks, kThreads, 0, stream)(grid, batch, lower, n, packing, keys_a, order_a);
  size_t bytes = temp_bytes;
  cub::DeviceRadixSort::SortPairs(temp, bytes, keys_a, keys_b, order_a, order_b, n, 0, key_bits, stream);
  PPT_LAUNCH(boundary_kernel, blocks, kThreads, 0, stream)(keys_b, n, order_a);
  bytes = temp_bytes;
  cub::DeviceScan::InclusiveSum(temp, bytes, order_a, segment, n, stream);
  PPT_LAUNCH(scatter_kernel, blocks, kThreads, 0, stream)(keys_b, order_b, segment, n, inverse, unique_keys,
                                                  counts, num_unique);
}

void voxelize_decode(const int64_t* unique_keys, int64_t m, VoxelPacking packing,
                     int32_t* voxel_coords, cudaStream_t stream) {
  PPT_LAUNCH(decode_kernel, grid_size(m, kThreads), kThreads, 0, stream)(unique_keys, m, packing, voxel_coords);
}

}  // namespace ppt::cuda
