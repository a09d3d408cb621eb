// CPU voxelize: parallel grid computation, a lock-free open-addressing hash over packed voxel keys
// (one probe sequence per point), then a radix sort of the M unique keys only. Every loop runs on
// ppt::parallel_for (ppt/cpu_parallel.h), and no torch operator touches the data (at::sort and
// at::zeros were parallel regions of their own, split the way torch splits them).
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "point/point_checks.h"
#include "point/voxelize_plan.h"
#include "ppt/cpu_parallel.h"
#include "ppt/hash.h"
#include "ppt/voxel.h"

namespace ppt {
namespace {

constexpr int64_t kGrain = 16384;  // points per chunk: a loop of fewer runs on the calling thread
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
  parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
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

struct KeySlot {
  int64_t key, slot;
};

// Elements per unit of the counting passes below: their partition, and so their output, does not
// depend on the thread count.
constexpr int64_t kCountUnit = int64_t{1} << 14;

int64_t count_units(int64_t size) { return (size + kCountUnit - 1) / kCountUnit; }

// (key, slot) of every occupied slot, in slot order: a parallel count, scan and write.
std::vector<KeySlot> occupied_slots(const int64_t* slots, int64_t capacity) {
  const int64_t units = count_units(capacity);
  std::vector<int64_t> first(units + 1, 0);
  parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t* unit = slots + u * kCountUnit;
      first[u + 1] = std::count_if(unit, unit + std::min(kCountUnit, capacity - u * kCountUnit),
                                   [](int64_t key) { return key != kEmptySlot; });
    }
  });
  std::partial_sum(first.begin(), first.end(), first.begin());
  std::vector<KeySlot> occupied(first[units]);
  parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      int64_t out = first[u];
      for (int64_t s = u * kCountUnit; s < std::min(capacity, (u + 1) * kCountUnit); ++s) {
        if (slots[s] != kEmptySlot) occupied[out++] = {slots[s], s};
      }
    }
  });
  return occupied;
}

// Sorts by key (keys in [0, 2^key_bits)): a parallel LSD radix sort, 11-bit digits, each pass a
// per-unit digit histogram, a scan in (digit, unit) order and a stable scatter.
void radix_sort(std::vector<KeySlot>& items, int key_bits) {
  constexpr int kDigitBits = 11;
  constexpr int64_t kBuckets = int64_t{1} << kDigitBits;
  const int64_t size = static_cast<int64_t>(items.size()), units = count_units(size);
  std::vector<KeySlot> buffer(size);
  std::vector<int64_t> position(units * kBuckets);
  for (int shift = 0; shift < key_bits; shift += kDigitBits) {
    const auto digit = [shift](const KeySlot& item) { return (item.key >> shift) & (kBuckets - 1); };
    parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        int64_t* histogram = position.data() + u * kBuckets;
        std::fill(histogram, histogram + kBuckets, 0);
        for (int64_t i = u * kCountUnit; i < std::min(size, (u + 1) * kCountUnit); ++i) ++histogram[digit(items[i])];
      }
    });
    int64_t total = 0;
    for (int64_t d = 0; d < kBuckets; ++d) {
      for (int64_t u = 0; u < units; ++u) {
        const int64_t count = position[u * kBuckets + d];
        position[u * kBuckets + d] = total;
        total += count;
      }
    }
    parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        int64_t* next = position.data() + u * kBuckets;
        for (int64_t i = u * kCountUnit; i < std::min(size, (u + 1) * kCountUnit); ++i) buffer[next[digit(items[i])]++] = items[i];
      }
    });
    items.swap(buffer);
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
  // Uninitialised buffers where every read element is written first (no serial zeroing pass).
  const std::unique_ptr<int64_t[]> slots(new int64_t[capacity]), point_slot(new int64_t[n]);
  parallel_for(0, capacity, kGrain, [&](int64_t begin, int64_t end) {
    std::fill(slots.get() + begin, slots.get() + end, kEmptySlot);
  });
  parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = batch ? batch[i] : 0;
      const int64_t* g = grid + 3 * i;
      const int64_t* lo = lower.data() + 3 * b;
      const int64_t key = plan.packing.pack(b, g[0] - lo[0], g[1] - lo[1], g[2] - lo[2]);
      point_slot[i] = hash_insert(slots.get(), mask, key);
    }
  });

  // The occupied slots' (key, slot) in key order: the rank of a slot is its voxel's row.
  std::vector<KeySlot> voxels = occupied_slots(slots.get(), capacity);
  radix_sort(voxels, plan.key_bits);
  const int64_t m = static_cast<int64_t>(voxels.size());
  const std::unique_ptr<int64_t[]> slot_rank(new int64_t[capacity]);  // read at occupied slots only
  at::Tensor voxel_coords = at::empty({m, 4}, coord.options().dtype(at::kInt));
  at::Tensor counts = at::empty({m}, long_opts);
  int32_t* vc = voxel_coords.data_ptr<int32_t>();
  int64_t* cnt = counts.data_ptr<int64_t>();
  parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      slot_rank[voxels[r].slot] = r;
      plan.packing.unpack(voxels[r].key, vc + 4 * r);
      cnt[r] = 0;
    }
  });

  at::Tensor inverse = at::empty({n}, long_opts);
  int64_t* inv = inverse.data_ptr<int64_t>();
  parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      inv[i] = slot_rank[point_slot[i]];
      __atomic_fetch_add(&cnt[inv[i]], 1, __ATOMIC_RELAXED);
    }
  });
  return {voxel_coords, inverse, counts};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) { m.impl("voxelize", cpu_op<&voxelize_cpu>); }

}  // namespace ppt
