// CUDA tile binning: count the tiles of each Gaussian, scan, emit one (key, value) pair per
// intersection, sort the pairs with CUB's stable radix sort and locate each tile's range.
// Key = (image * tiles + tile) << 32 | float32 bits of the depth: depths are >= near_plane > 0, so
// their IEEE bits order like the values, and the stable sort breaks depth ties by Gaussian index
// (pairs are emitted in index order), exactly like the CPU sort.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "ppt/cuda_launch.cuh"
#include "ppt/gaussian.h"
#include "raster/raster_cuda.h"

namespace ppt {
namespace raster_cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void bin_count_kernel(TileGridArgs g, const T* means2d, const int32_t* radii,
                                 int32_t* tiles_per_gaussian, int64_t* counts) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= g.images * g.n) return;
  int x0, x1, y0, y1;
  tile_rect<T>(means2d + idx * 2, radii[idx], g.tile_size, g.tiles_x, g.tiles_y, &x0, &x1, &y0, &y1);
  const int count = (x1 - x0) * (y1 - y0);
  tiles_per_gaussian[idx] = count;
  counts[idx] = count;
}

template <typename T>
__global__ void bin_fill_kernel(TileGridArgs g, const T* means2d, const int32_t* radii, const T* depths,
                                const int64_t* cumulative, uint64_t* keys, int64_t* values) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= g.images * g.n) return;
  int x0, x1, y0, y1;
  tile_rect<T>(means2d + idx * 2, radii[idx], g.tile_size, g.tiles_x, g.tiles_y, &x0, &x1, &y0, &y1);
  int64_t out = cumulative[idx] - static_cast<int64_t>(x1 - x0) * (y1 - y0);
  const uint64_t depth_bits = __float_as_uint(static_cast<float>(depths[idx]));
  const uint64_t image_tile0 = static_cast<uint64_t>(idx / g.n) * g.tiles_x * g.tiles_y;
  for (int ty = y0; ty < y1; ++ty) {
    for (int tx = x0; tx < x1; ++tx) {
      keys[out] = ((image_tile0 + static_cast<uint64_t>(ty) * g.tiles_x + tx) << 32) | depth_bits;
      values[out] = idx;
      ++out;
    }
  }
}

__global__ void tile_offsets_kernel(const uint64_t* keys, int64_t count, int64_t num_image_tiles,
                                    int32_t* offsets) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (p >= count) return;
  const int64_t tile = static_cast<int64_t>(keys[p] >> 32);
  const int64_t prev = p == 0 ? -1 : static_cast<int64_t>(keys[p - 1] >> 32);
  // Position p starts every tile in (prev, tile]; the last position also ends the empty tail.
  for (int64_t t = prev + 1; t <= tile; ++t) offsets[t] = static_cast<int32_t>(p);
  if (p == count - 1) {
    for (int64_t t = tile + 1; t < num_image_tiles; ++t) offsets[t] = static_cast<int32_t>(count);
  }
}

__global__ void iota_with_keys_kernel(const int64_t* ids, int64_t count, uint64_t* keys, int64_t* values) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (p >= count) return;
  keys[p] = static_cast<uint64_t>(ids[p]);
  values[p] = p;
}

}  // namespace

void bin_count(FloatKind kind, const TileGridArgs& g, const void* means2d, const int32_t* radii,
               int32_t* tiles_per_gaussian, int64_t* counts, cudaStream_t stream) {
  const int64_t count = g.images * g.n;
  if (count == 0) return;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    PPT_LAUNCH(bin_count_kernel<T>, blocks_for(count, kThreads), kThreads, 0, stream)(
        g, static_cast<const T*>(means2d), radii, tiles_per_gaussian, counts);
  });
}

size_t inclusive_scan_temp_bytes(int64_t count) {
  size_t bytes = 0;
  cub::DeviceScan::InclusiveSum(nullptr, bytes, static_cast<const int64_t*>(nullptr),
                                static_cast<int64_t*>(nullptr), count);
  return bytes;
}

void inclusive_scan(void* temp, size_t temp_bytes, const int64_t* in, int64_t* out, int64_t count,
                    cudaStream_t stream) {
  if (count == 0) return;
  cub::DeviceScan::InclusiveSum(temp, temp_bytes, in, out, count, stream);
}

void bin_fill(FloatKind kind, const TileGridArgs& g, const void* means2d, const int32_t* radii,
              const void* depths, const int64_t* cumulative, uint64_t* keys, int64_t* values,
              cudaStream_t stream) {
  const int64_t count = g.images * g.n;
  if (count == 0) return;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    PPT_LAUNCH(bin_fill_kernel<T>, blocks_for(count, kThreads), kThreads, 0, stream)(
        g, static_cast<const T*>(means2d), radii, static_cast<const T*>(depths), cumulative, keys, values);
  });
}

size_t sort_pairs_temp_bytes(int64_t count, int end_bit) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                  static_cast<uint64_t*>(nullptr), static_cast<const int64_t*>(nullptr),
                                  static_cast<int64_t*>(nullptr), count, 0, end_bit);
  return bytes;
}

void sort_pairs(void* temp, size_t temp_bytes, const uint64_t* keys_in, uint64_t* keys_out,
                const int64_t* values_in, int64_t* values_out, int64_t count, int end_bit, cudaStream_t stream) {
  if (count == 0) return;
  cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, values_in, values_out, count, 0, end_bit,
                                  stream);
}

void tile_offsets(const uint64_t* sorted_keys, int64_t count, int64_t num_image_tiles, int32_t* offsets,
                  cudaStream_t stream) {
  if (count == 0) return;  // the glue zero-fills offsets, which is correct for no intersections
  PPT_LAUNCH(tile_offsets_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(sorted_keys, count, num_image_tiles,
                                                                           offsets);
}

void iota_with_keys(const int64_t* ids, int64_t count, uint64_t* keys, int64_t* values, cudaStream_t stream) {
  if (count == 0) return;
  PPT_LAUNCH(iota_with_keys_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(ids, count, keys, values);
}

}  // namespace raster_cuda
}  // namespace ppt
