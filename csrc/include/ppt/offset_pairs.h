// CPU scheduling of the updates that sparse convolution and pooling make through a kernel map:
// pair p of kernel offset k adds (or compares) a source row into destination row dst_rows[p], and
// every destination row must take its offsets in offset order (one pair per offset and row, as
// every kernel map guarantees), so that results do not depend on how threads split the work.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "ppt/cpu_parallel.h"

namespace ppt {

// True when every offset's destination rows are increasing: so are the submanifold maps' output
// rows and the strided maps' input rows (both list an offset's pairs in row order), and the
// destination rows of a map over key-sorted sites (voxelize's output) in either direction.
inline bool destinations_sorted(const int32_t* dst_rows, const std::vector<int64_t>& offsets) {
  constexpr int64_t kPairsPerChunk = int64_t{1} << 16;  // a short check runs on the caller alone
  std::atomic<bool> sorted{true};
  parallel_for(0, offsets.back(), kPairsPerChunk, [&](int64_t begin, int64_t end) {
    // the neighbours (p, p + 1) with p in [begin, end) and both in one offset
    for (size_t k = 0; k + 1 < offsets.size() && sorted.load(std::memory_order_relaxed); ++k) {
      const int64_t first = std::max(begin, offsets[k]), last = std::min(end + 1, offsets[k + 1]);
      if (first < last && !std::is_sorted(dst_rows + first, dst_rows + last)) sorted.store(false);
    }
  });
  return sorted.load();
}

// Calls init(row_begin, row_end) on every destination row once, then body(k, pair_begin,
// pair_end) on every pair, each destination row's pairs in offset order.
//
// With each offset's destination rows in increasing order (destinations_sorted), this is one
// parallel loop over blocks of `row_block` destination rows: a block is initialised, then takes
// each offset's run of pairs into its rows (found by binary search) while it stays in cache. Other
// maps take one parallel loop per offset (chunks of at least `pair_grain` pairs), since an
// offset's rows must all be done before the next offset updates them. Either way a call needs few
// parallel loops, or one per offset where the map's order leaves no choice.
template <typename Init, typename Body>
void for_each_pair_by_destination(const int32_t* dst_rows, const std::vector<int64_t>& offsets, int64_t num_dst,
                                  int64_t row_block, int64_t pair_grain, const Init& init, const Body& body) {
  if (destinations_sorted(dst_rows, offsets)) {
    parallel_for(0, num_dst, row_block, [&](int64_t begin, int64_t end) {
      for (int64_t first = begin; first < end; first += row_block) {
        const int64_t last = std::min(end, first + row_block);
        init(first, last);
        for (size_t k = 0; k + 1 < offsets.size(); ++k) {
          const int32_t* from = std::lower_bound(dst_rows + offsets[k], dst_rows + offsets[k + 1], first);
          const int32_t* to = std::lower_bound(from, dst_rows + offsets[k + 1], last);
          if (from != to) body(k, from - dst_rows, to - dst_rows);
        }
      }
    });
    return;
  }
  parallel_for(0, num_dst, row_block, [&](int64_t begin, int64_t end) { init(begin, end); });
  for (size_t k = 0; k + 1 < offsets.size(); ++k) {
    parallel_for(offsets[k], offsets[k + 1], pair_grain, [&](int64_t begin, int64_t end) { body(k, begin, end); });
  }
}

}  // namespace ppt
