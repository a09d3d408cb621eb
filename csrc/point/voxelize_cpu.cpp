// CPU voxelize: parallel grid computation, a lock-free open-addressing hash over packed voxel keys
// (one probe sequence per point), then a sort of the M unique keys only.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <vector>

#include "point/point_checks.h"
#include "point/voxelize_plan.h"
#include "ppt/hash.h"
#include "ppt/voxel.h"

namespace ppt {
namespace {

constexpr int64_t kGrain = 4096;
constexpr int64_t kEmptySlot = -1;  // keys are >= 0

void atomic_min(std::atomic<int64_t>& target, int64_t value) {
  int64_t current = target.load(std::memory_order_relaxed);
  while (value < current && !target.compare_exchange_weak(current, value)) {
  }
}

// grid[i] = floor(coord[i] / voxel_size); returns the first invalid point index, or n.
template <typename scalar_t>
int64_t compute_grid(const scalar_t* coord, int64_t n, double voxel_size, int64_t* grid) {
  std::atomic<int64_t> first_invalid{n};
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      for (int a = 0; a < 3; ++a) {
        if (!grid_index(static_cast<double>(coord[3 * i + a]), voxel_size, &grid[3 * i + a])) {
          atomic_min(first_invalid, i);
          return;
        }
      }
    }
  });
  return first_invalid.load();
}

// Inserts key and returns its slot. Slots only ever go from empty to a key, so a CAS per slot
// suffices for concurrent inserts.
int64_t hash_insert(int64_t* slots, uint64_t mask, int64_t key) {
  uint64_t slot = mix_hash64(static_cast<uint64_t>(key)) & mask;
  while (true) {
    int64_t current = __atomic_load_n(&slots[slot], __ATOMIC_RELAXED);
    if (current == key) return static_cast<int64_t>(slot);
    if (current == kEmptySlot) {
      int64_t expected = kEmptySlot;
      if (__atomic_compare_exchange_n(&slots[slot], &expected, key, false, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED) ||
          expected == key) {
        return static_cast<int64_t>(slot);
      }
    }
    slot = (slot + 1) & mask;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> voxelize_cpu(const at::Tensor& coord_in,
                                                           double voxel_size,
                                                           const std::optional<at::Tensor>& batch_in) {
  check_voxelize_args(coord_in, voxel_size, batch_in);
  const int64_t n = coord_in.size(0);
  const auto long_opts = coord_in.options().dtype(at::kLong);
  if (n == 0) {
    return {at::empty({0, 4}, coord_in.options().dtype(at::kInt)), at::empty({0}, long_opts),
            at::empty({0}, long_opts)};
  }
  const at::Tensor coord = coord_in.contiguous();
  at::Tensor grid_t = at::empty({n, 3}, long_opts);
  int64_t* grid = grid_t.data_ptr<int64_t>();
  int64_t first_invalid = n;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, coord.scalar_type(), "voxelize_cpu", [&] {
    first_invalid = compute_grid(coord.const_data_ptr<scalar_t>(), n, voxel_size, grid);
  });
  if (first_invalid < n) {
    const at::Tensor bad = coord[first_invalid].to(at::kDouble);
    fail_voxelize_invalid_point(first_invalid, bad[0].item<double>(), bad[1].item<double>(),
                                bad[2].item<double>(), voxel_size);
  }

  const at::Tensor batch_t = batch_in.has_value() ? batch_in->contiguous() : at::Tensor();
  const int64_t* batch = batch_t.defined() ? batch_t.const_data_ptr<int64_t>() : nullptr;
  int64_t num_batches = 1;
  if (batch != nullptr) {
    const auto [lo, hi] = std::minmax_element(batch, batch + n);
    num_batches = voxelize_num_batches(*lo, *hi);
  }

  // Per-scene bounds; serial because B can be as large as N and the pass is memory-bound.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  std::vector<int64_t> lower(3 * num_batches, kMax), upper(3 * num_batches, kMin);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = batch ? batch[i] : 0;
    for (int a = 0; a < 3; ++a) {
      lower[3 * b + a] = std::min(lower[3 * b + a], grid[3 * i + a]);
      upper[3 * b + a] = std::max(upper[3 * b + a], grid[3 * i + a]);
    }
  }
  const VoxelizePlan plan = plan_voxelize(num_batches, lower.data(), upper.data(), voxel_size);

  // Insert every point's key; remember its slot so the inverse needs no second probe.
  int64_t capacity = 16;
  while (capacity < 2 * n) capacity *= 2;
  const uint64_t mask = static_cast<uint64_t>(capacity - 1);
  std::vector<int64_t> slots(capacity, kEmptySlot);
  std::vector<int64_t> point_slot(n);
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = batch ? batch[i] : 0;
      const int64_t* g = grid + 3 * i;
      const int64_t* lo = lower.data() + 3 * b;
      const int64_t key = plan.packing.pack(b, g[0] - lo[0], g[1] - lo[1], g[2] - lo[2]);
      point_slot[i] = hash_insert(slots.data(), mask, key);
    }
  });

  // Sort only the unique keys, then give each occupied slot its rank in (b, x, y, z) order.
  std::vector<int64_t> occupied;
  occupied.reserve(n);
  for (int64_t s = 0; s < capacity; ++s) {
    if (slots[s] != kEmptySlot) occupied.push_back(s);
  }
  const int64_t m = static_cast<int64_t>(occupied.size());
  at::Tensor unique_keys = at::empty({m}, long_opts);
  int64_t* keys = unique_keys.data_ptr<int64_t>();
  for (int64_t r = 0; r < m; ++r) keys[r] = slots[occupied[r]];
  const auto [sorted_keys_t, order_t] = at::sort(unique_keys, /*stable=*/false);
  const int64_t* sorted_keys = sorted_keys_t.const_data_ptr<int64_t>();
  const int64_t* order = order_t.const_data_ptr<int64_t>();
  std::vector<int64_t> slot_rank(capacity);
  at::Tensor voxel_coords = at::empty({m, 4}, coord.options().dtype(at::kInt));
  int32_t* vc = voxel_coords.data_ptr<int32_t>();
  at::parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      slot_rank[occupied[order[r]]] = r;
      plan.packing.unpack(sorted_keys[r], vc + 4 * r);
    }
  });

  at::Tensor inverse = at::empty({n}, long_opts);
  at::Tensor counts = at::zeros({m}, long_opts);
  int64_t* inv = inverse.data_ptr<int64_t>();
  int64_t* cnt = counts.data_ptr<int64_t>();
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      inv[i] = slot_rank[point_slot[i]];
      __atomic_fetch_add(&cnt[inv[i]], 1, __ATOMIC_RELAXED);
    }
  });
  return {voxel_coords, inverse, counts};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) { m.impl("voxelize", &voxelize_cpu); }

}  // namespace ppt
