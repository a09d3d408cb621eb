// CUDA kernels of the kernel-map construction: a global-memory open-addressing hash table
// (atomicCAS insert, linear probing, shared with the host code through ppt/hash.h) and one thread
// per (offset, site) neighbour search. Every output is a pure function of the input, so the maps
// are deterministic although insertion order is not.
#include <cuda_runtime.h>

#include "ppt/cuda_float.cuh"
#include "ppt/cuda_launch.cuh"
#include "ppt/hash.h"
#include "sparse/sparse_cuda.h"

namespace ppt {
namespace {

constexpr int kThreads = 256;

__global__ void pack_keys_kernel(const int32_t* __restrict__ indices, int64_t n, VoxelPacking packing,
                                 int64_t* __restrict__ keys) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t* s = indices + 4 * i;
    keys[i] = packing.pack(s[0], s[1], s[2], s[3]);
  }
}

__global__ void insert_kernel(const int64_t* __restrict__ keys, int64_t n, int64_t* table_keys,
                              int32_t* table_values, int64_t capacity) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    hash_insert_device(table_keys, table_values, capacity, keys[i], static_cast<int32_t>(i));
  }
}

// Whichever duplicate won the insert race, leave the lowest row of each key in the table.
__global__ void keep_first_row_kernel(const int64_t* __restrict__ keys, int64_t n, const int64_t* table_keys,
                                      int32_t* table_values, int64_t capacity) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t slot = hash_find_slot(table_keys, capacity, keys[i]);
    if (table_values[slot] > static_cast<int32_t>(i)) atomicMin(table_values + slot, static_cast<int32_t>(i));
  }
}

__global__ void find_duplicates_kernel(const int64_t* __restrict__ keys, int64_t n, const int64_t* table_keys,
                                       const int32_t* table_values, int64_t capacity,
                                       unsigned long long* duplicate_row) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (hash_lookup(table_keys, table_values, capacity, keys[i]) != static_cast<int32_t>(i)) {
      atomicMin(duplicate_row, static_cast<unsigned long long>(i));
    }
  }
}

// One thread per (k, o), o fastest: consecutive threads write consecutive map entries.
__global__ void submanifold_map_kernel(const int32_t* __restrict__ indices, int64_t n, ConvGeometry geometry,
                                       VoxelPacking packing, const int64_t* __restrict__ table_keys,
                                       const int32_t* __restrict__ table_values, int64_t capacity,
                                       int32_t* __restrict__ map) {
  const int64_t total = n * geometry.volume();
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = t / n, o = t - k * n;
    const int32_t* s = indices + 4 * o;
    int64_t neighbour[3];
    map[t] = geometry.submanifold_neighbour(s + 1, k, neighbour)
                 ? hash_lookup(table_keys, table_values, capacity,
                               packing.pack(s[0], neighbour[0], neighbour[1], neighbour[2]))
                 : -1;
  }
}

__global__ void strided_candidates_kernel(const int32_t* __restrict__ indices, int64_t n, ConvGeometry geometry,
                                          VoxelPacking out_packing, int64_t* __restrict__ candidates) {
  const int64_t total = n * geometry.volume();
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = t / n, i = t - k * n;
    const int32_t* s = indices + 4 * i;
    int64_t o[3];
    candidates[t] = geometry.strided_output(s + 1, k, o) ? out_packing.pack(s[0], o[0], o[1], o[2]) : -1;
  }
}

__global__ void lookup_kernel(const int64_t* __restrict__ keys, int64_t count, const int64_t* __restrict__ table_keys,
                              const int32_t* __restrict__ table_values, int64_t capacity, int32_t* __restrict__ rows) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t key = keys[i];
    rows[i] = key < 0 ? -1 : hash_lookup(table_keys, table_values, capacity, key);
  }
}

__global__ void unpack_keys_kernel(const int64_t* __restrict__ keys, int64_t m, VoxelPacking packing,
                                   int32_t* __restrict__ sites) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    packing.unpack(keys[i], sites + 4 * i);
  }
}

}  // namespace

void launch_pack_keys(const int32_t* indices, int64_t n, VoxelPacking packing, int64_t* keys, cudaStream_t stream) {
  if (n == 0) return;
  PPT_LAUNCH(pack_keys_kernel, cuda::grid_size(n, kThreads), kThreads, 0, stream)(indices, n, packing, keys);
}

void launch_build_hash_table(const int64_t* keys, int64_t n, int64_t* table_keys, int32_t* table_values,
                             int64_t capacity, int64_t* duplicate_row, cudaStream_t stream) {
  if (n == 0) return;
  static_assert(sizeof(unsigned long long) == sizeof(int64_t), "64-bit atomicMin expected");
  PPT_LAUNCH(insert_kernel, cuda::grid_size(n, kThreads), kThreads, 0, stream)(keys, n, table_keys, table_values, capacity);
  PPT_LAUNCH(keep_first_row_kernel, cuda::grid_size(n, kThreads), kThreads, 0, stream)(keys, n, table_keys, table_values, capacity);
  PPT_LAUNCH(find_duplicates_kernel, cuda::grid_size(n, kThreads), kThreads, 0, stream)(
      keys, n, table_keys, table_values, capacity, reinterpret_cast<unsigned long long*>(duplicate_row));
}

void launch_submanifold_map(const int32_t* indices, int64_t n, ConvGeometry geometry, VoxelPacking packing,
                            const int64_t* table_keys, const int32_t* table_values, int64_t capacity,
                            int32_t* map, cudaStream_t stream) {
  const int64_t total = n * geometry.volume();
  if (total == 0) return;
  PPT_LAUNCH(submanifold_map_kernel, cuda::grid_size(total, kThreads), kThreads, 0, stream)(indices, n, geometry, packing, table_keys,
                                                                     table_values, capacity, map);
}

void launch_strided_candidates(const int32_t* indices, int64_t n, ConvGeometry geometry, VoxelPacking out_packing,
                               int64_t* candidates, cudaStream_t stream) {
  const int64_t total = n * geometry.volume();
  if (total == 0) return;
  PPT_LAUNCH(strided_candidates_kernel, cuda::grid_size(total, kThreads), kThreads, 0, stream)(indices, n, geometry, out_packing, candidates);
}

void launch_hash_lookup(const int64_t* keys, int64_t count, const int64_t* table_keys, const int32_t* table_values,
                        int64_t capacity, int32_t* rows, cudaStream_t stream) {
  if (count == 0) return;
  PPT_LAUNCH(lookup_kernel, cuda::grid_size(count, kThreads), kThreads, 0, stream)(keys, count, table_keys, table_values, capacity, rows);
}

void launch_unpack_keys(const int64_t* keys, int64_t m, VoxelPacking packing, int32_t* sites, cudaStream_t stream) {
  if (m == 0) return;
  PPT_LAUNCH(unpack_keys_kernel, cuda::grid_size(m, kThreads), kThreads, 0, stream)(keys, m, packing, sites);
}

}  // namespace ppt
