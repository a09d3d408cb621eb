// CPU steps of the kernel-map construction: packed keys, a sequential open-addressing insert
// (duplicates detected in row order), a merge-join neighbour search for submanifold maps and
// parallel hash lookups for strided maps.
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "ppt/cpu_parallel.h"
#include "ppt/hash.h"
#include "sparse/kmap_plan.h"

namespace ppt {
namespace {

constexpr int64_t kGrain = 16384;  // sites per chunk: a loop of fewer runs on the calling thread

at::Tensor pack_keys_cpu(const at::Tensor& indices, const VoxelPacking& packing) {
  const int64_t n = indices.size(0);
  at::Tensor keys = at::empty({n}, indices.options().dtype(at::kLong));
  const int32_t* site = indices.const_data_ptr<int32_t>();
  int64_t* out = keys.data_ptr<int64_t>();
  parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t* s = site + 4 * i;
      out[i] = packing.pack(s[0], s[1], s[2], s[3]);
    }
  });
  return keys;
}

int64_t build_table_cpu(const at::Tensor& keys, at::Tensor& table_keys, at::Tensor& table_values) {
  const int64_t* key = keys.const_data_ptr<int64_t>();
  int64_t* slots = table_keys.data_ptr<int64_t>();
  int32_t* values = table_values.data_ptr<int32_t>();
  const int64_t capacity = table_keys.size(0);
  for (int64_t i = 0; i < keys.size(0); ++i) {
    if (!hash_insert_host(slots, values, capacity, key[i], static_cast<int32_t>(i))) return i;
  }
  return -1;
}

// Neighbour search by merge join instead of hashing: with the sites in key order, the neighbour
// keys key + delta_k of one offset are in key order too (packing is linear and only in-grid
// neighbours are searched), so one forward scan per offset and block of sites finds them all with
// sequential memory access. The hash table stays the structure of the CUDA path and of the
// strided map.
at::Tensor submanifold_map_cpu(const at::Tensor& indices, const ConvGeometry& geometry,
                               const VoxelPacking& packing, const at::Tensor& /*table_keys*/,
                               const at::Tensor& /*table_values*/) {
  const int64_t n = indices.size(0), volume = geometry.volume();
  at::Tensor map = at::empty({volume, n}, indices.options());
  if (n == 0) return map;
  const int32_t* site = indices.const_data_ptr<int32_t>();
  std::vector<int64_t> key(n);
  for (int64_t i = 0; i < n; ++i) key[i] = packing.pack(site[4 * i], site[4 * i + 1], site[4 * i + 2], site[4 * i + 3]);
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (!std::is_sorted(key.begin(), key.end())) {  // voxelize's output is already sorted
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return key[a] < key[b]; });
  }
  std::vector<int64_t> sorted_key(n);
  for (int64_t p = 0; p < n; ++p) sorted_key[p] = key[order[p]];

  int32_t* out = map.data_ptr<int32_t>();
  const int64_t blocks = (n + kGrain - 1) / kGrain;
  parallel_for(0, volume * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t k = task / blocks, first = (task % blocks) * kGrain, last = std::min(n, first + kGrain);
      int64_t ijl[3];
      geometry.offset_of(k, ijl);
      int64_t step[3];
      for (int a = 0; a < 3; ++a) step[a] = (ijl[a] - geometry.kernel[a] / 2) * geometry.dilation[a];
      const int64_t delta = (step[0] * packing.extent_y + step[1]) * packing.extent_z + step[2];
      const int64_t* cursor = std::lower_bound(sorted_key.data(), sorted_key.data() + n, sorted_key[first] + delta);
      const int64_t* stop = sorted_key.data() + n;
      for (int64_t p = first; p < last; ++p) {
        const int32_t o = order[p];
        int64_t neighbour[3];
        int32_t found = -1;
        if (geometry.submanifold_neighbour(site + 4 * o + 1, k, neighbour)) {
          const int64_t target = sorted_key[p] + delta;
          while (cursor != stop && *cursor < target) ++cursor;
          if (cursor != stop && *cursor == target) found = order[cursor - sorted_key.data()];
        }
        out[k * n + o] = found;
      }
    }
  });
  return map;
}

at::Tensor strided_candidates_cpu(const at::Tensor& indices, const ConvGeometry& geometry,
                                  const VoxelPacking& out_packing) {
  const int64_t n = indices.size(0), volume = geometry.volume();
  at::Tensor candidates = at::empty({volume, n}, indices.options().dtype(at::kLong));
  const int32_t* site = indices.const_data_ptr<int32_t>();
  int64_t* out = candidates.data_ptr<int64_t>();
  parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t k = 0; k < volume; ++k) {
      for (int64_t i = begin; i < end; ++i) {
        const int32_t* s = site + 4 * i;
        int64_t o[3];
        out[k * n + i] = geometry.strided_output(s + 1, k, o) ? out_packing.pack(s[0], o[0], o[1], o[2]) : -1;
      }
    }
  });
  return candidates;
}

at::Tensor lookup_cpu(const at::Tensor& keys, const at::Tensor& table_keys, const at::Tensor& table_values) {
  at::Tensor rows = at::empty(keys.sizes(), keys.options().dtype(at::kInt));
  const int64_t* key = keys.const_data_ptr<int64_t>();
  const int64_t* slots = table_keys.const_data_ptr<int64_t>();
  const int32_t* values = table_values.const_data_ptr<int32_t>();
  const int64_t capacity = table_keys.size(0);
  int32_t* out = rows.data_ptr<int32_t>();
  parallel_for(0, keys.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out[i] = key[i] < 0 ? -1 : hash_lookup(slots, values, capacity, key[i]);
    }
  });
  return rows;
}

at::Tensor unpack_keys_cpu(const at::Tensor& keys, const VoxelPacking& packing) {
  const int64_t m = keys.size(0);
  at::Tensor sites = at::empty({m, 4}, keys.options().dtype(at::kInt));
  const int64_t* key = keys.const_data_ptr<int64_t>();
  int32_t* out = sites.data_ptr<int32_t>();
  parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) packing.unpack(key[i], out + 4 * i);
  });
  return sites;
}

constexpr KernelMapBackend kCpuBackend{&pack_keys_cpu,    &build_table_cpu,        &submanifold_map_cpu,
                                       &strided_candidates_cpu, &lookup_cpu, &unpack_keys_cpu};

std::tuple<at::Tensor, at::Tensor, at::Tensor> sparse_kernel_map_cpu(
    const at::Tensor& indices, int64_t batch_size, at::IntArrayRef spatial_shape,
    at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
    at::IntArrayRef dilation, bool submanifold) {
  return build_kernel_map(kCpuBackend, indices, batch_size, spatial_shape, kernel_size, stride,
                          padding, dilation, submanifold);
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) { m.impl("sparse_kernel_map", cpu_op<&sparse_kernel_map_cpu>); }

}  // namespace ppt
