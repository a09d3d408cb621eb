// CPU steps of the kernel-map construction: packed keys, a sequential open-addressing insert
// (duplicates detected in row order) and parallel neighbour searches over sites.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "ppt/hash.h"
#include "sparse/kmap_plan.h"

namespace ppt {
namespace {

constexpr int64_t kGrain = 2048;

at::Tensor pack_keys_cpu(const at::Tensor& indices, const VoxelPacking& packing) {
  const int64_t n = indices.size(0);
  at::Tensor keys = at::empty({n}, indices.options().dtype(at::kLong));
  const int32_t* site = indices.const_data_ptr<int32_t>();
  int64_t* out = keys.data_ptr<int64_t>();
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
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

at::Tensor submanifold_map_cpu(const at::Tensor& indices, const ConvGeometry& geometry,
                               const VoxelPacking& packing, const at::Tensor& table_keys,
                               const at::Tensor& table_values) {
  const int64_t n = indices.size(0), volume = geometry.volume();
  at::Tensor map = at::empty({volume, n}, indices.options());
  const int32_t* site = indices.const_data_ptr<int32_t>();
  const int64_t* slots = table_keys.const_data_ptr<int64_t>();
  const int32_t* values = table_values.const_data_ptr<int32_t>();
  const int64_t capacity = table_keys.size(0);
  int32_t* out = map.data_ptr<int32_t>();
  at::parallel_for(0, n, kGrain / 8, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const int32_t* s = site + 4 * o;
      for (int64_t k = 0; k < volume; ++k) {
        int64_t neighbour[3];
        out[k * n + o] = geometry.submanifold_neighbour(s + 1, k, neighbour)
                             ? hash_lookup(slots, values, capacity,
                                           packing.pack(s[0], neighbour[0], neighbour[1], neighbour[2]))
                             : -1;
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
  at::parallel_for(0, n, kGrain / 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t* s = site + 4 * i;
      for (int64_t k = 0; k < volume; ++k) {
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
  at::parallel_for(0, keys.numel(), kGrain, [&](int64_t begin, int64_t end) {
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
  at::parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
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

TORCH_LIBRARY_IMPL(ppt, CPU, m) { m.impl("sparse_kernel_map", &sparse_kernel_map_cpu); }

}  // namespace ppt
