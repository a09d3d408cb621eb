#include "sparse/kmap_plan.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/_unique.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include "ppt/hash.h"
#include "sparse/sparse_checks.h"

namespace ppt {
namespace {

struct HashTable {
  at::Tensor keys, values;
};

HashTable build_hash_table(const KernelMapBackend& backend, const at::Tensor& indices,
                           const at::Tensor& keys) {
  const int64_t capacity = hash_capacity_for(keys.size(0));
  HashTable table{at::full({capacity}, kEmptyHashKey, keys.options()),
                  at::empty({capacity}, keys.options().dtype(at::kInt))};
  const int64_t duplicate = backend.build_table(keys, table.keys, table.values);
  if (duplicate >= 0) fail_duplicate_site(indices, duplicate);
  return table;
}

// neighbour_map (K, L) int32 with -1 for no pair -> pairs (2, P) and offsets (K + 1,). Row-major
// nonzero keeps offsets grouped and their pairs in row order on every device.
std::tuple<at::Tensor, at::Tensor> compact_pairs(const at::Tensor& neighbour_map, bool map_rows_are_outputs) {
  const int64_t volume = neighbour_map.size(0), rows = neighbour_map.size(1);
  const at::Tensor flat = neighbour_map.reshape({-1});
  const at::Tensor position = (flat >= 0).nonzero().squeeze(1);
  const at::Tensor offset = position.div(rows, "floor");
  const at::Tensor row = (position - offset * rows).to(at::kInt);
  const at::Tensor partner = flat.index_select(0, position);
  const at::Tensor pairs = map_rows_are_outputs ? at::stack({partner, row}) : at::stack({row, partner});
  const at::Tensor counts = at::bincount(offset, {}, volume);
  const at::Tensor offsets = at::cat({at::zeros({1}, counts.options()), counts.cumsum(0)});
  return {pairs, offsets};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> build_kernel_map(
    const KernelMapBackend& backend, const at::Tensor& indices_in, int64_t batch_size,
    at::IntArrayRef spatial_shape, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool submanifold) {
  const ConvGeometry geometry = check_kernel_map_args(indices_in, batch_size, spatial_shape,
                                                      kernel_size, stride, padding, dilation, submanifold);
  const at::Tensor indices = indices_in.contiguous();
  const int64_t volume = geometry.volume();
  const VoxelPacking in_packing = site_packing(geometry.in_shape);
  const at::Tensor keys = backend.pack_keys(indices, in_packing);
  const HashTable in_table = build_hash_table(backend, indices, keys);
  if (submanifold) {
    const at::Tensor neighbour_map =
        backend.submanifold_map(indices, geometry, in_packing, in_table.keys, in_table.values);
    auto [pairs, offsets] = compact_pairs(neighbour_map, /*map_rows_are_outputs=*/true);
    return {indices.clone(), pairs, offsets};
  }
  const VoxelPacking out_packing = site_packing(geometry.out_shape);
  const at::Tensor candidates = backend.strided_candidates(indices, geometry, out_packing);
  const at::Tensor valid = candidates.reshape({-1});
  const at::Tensor out_keys = std::get<0>(at::_unique(valid.masked_select(valid >= 0), /*sorted=*/true));
  const at::Tensor out_indices = backend.unpack_keys(out_keys, out_packing);
  const HashTable out_table = build_hash_table(backend, out_indices, out_keys);
  const at::Tensor neighbour_map = backend.lookup(candidates, out_table.keys, out_table.values);
  auto [pairs, offsets] = compact_pairs(neighbour_map, /*map_rows_are_outputs=*/false);
  TORCH_INTERNAL_ASSERT(offsets.size(0) == volume + 1);
  return {out_indices, pairs, offsets};
}

}  // namespace ppt
