// CPU farthest point sampling. Clouds run in parallel; when there are fewer clouds than threads
// the per-iteration distance update is split across threads instead.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "point/point_checks.h"
#include "ppt/cpu_parallel.h"
#include "ppt/geometry.h"

namespace ppt {
namespace {

// Points per block when one cloud's distance update is split across threads.
constexpr int64_t kSplitBlock = 2048;

// Updates min_dist[begin:end) with the distance to (cx, cy, cz) and returns the first argmax.
template <typename acc_t>
std::pair<acc_t, int64_t> update_and_argmax(const acc_t* x, const acc_t* y, const acc_t* z,
                                            acc_t* min_dist, int64_t begin, int64_t end, acc_t cx,
                                            acc_t cy, acc_t cz) {
  for (int64_t j = begin; j < end; ++j) {
    const acc_t d = squared_distance3(x[j], y[j], z[j], cx, cy, cz);
    min_dist[j] = d < min_dist[j] ? d : min_dist[j];
  }
  acc_t best = -1;
  int64_t best_index = begin;
  for (int64_t j = begin; j < end; ++j) {
    if (min_dist[j] > best) {
      best = min_dist[j];
      best_index = j;
    }
  }
  return {best, best_index};
}

template <typename scalar_t>
void fps_cloud(const scalar_t* xyz, int64_t n, int64_t num_samples, int64_t start_index,
               int64_t* out, bool split_points) {
  using acc_t = at::opmath_type<scalar_t>;
  // Structure-of-arrays copy so the distance loop vectorizes.
  std::vector<acc_t> x(n), y(n), z(n), min_dist(n, std::numeric_limits<acc_t>::infinity());
  for (int64_t j = 0; j < n; ++j) {
    x[j] = static_cast<acc_t>(xyz[3 * j]);
    y[j] = static_cast<acc_t>(xyz[3 * j + 1]);
    z[j] = static_cast<acc_t>(xyz[3 * j + 2]);
  }
  using Best = std::pair<acc_t, int64_t>;
  const int64_t blocks = split_points ? (n + kSplitBlock - 1) / kSplitBlock : 0;
  std::vector<Best> block_best(blocks);
  int64_t last = start_index;
  for (int64_t s = 0; s < num_samples; ++s) {
    out[s] = last;
    if (s + 1 == num_samples) break;
    const acc_t cx = x[last], cy = y[last], cz = z[last];
    if (!split_points) {
      last = update_and_argmax(x.data(), y.data(), z.data(), min_dist.data(), 0, n, cx, cy, cz).second;
      continue;
    }
    // Per fixed block of points the first argmax, then the first of the blocks' maxima: the same
    // pick for any thread count.
    parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        block_best[block] = update_and_argmax(x.data(), y.data(), z.data(), min_dist.data(), block * kSplitBlock,
                                              std::min(n, (block + 1) * kSplitBlock), cx, cy, cz);
      }
    });
    Best best = block_best[0];
    for (int64_t block = 1; block < blocks; ++block) {
      if (block_best[block].first > best.first) best = block_best[block];  // ties keep the lower index
    }
    last = best.second;
  }
}

at::Tensor fps_cpu(const at::Tensor& xyz_in, int64_t num_samples, int64_t start_index) {
  check_fps_args(xyz_in, num_samples, start_index);
  const int64_t batches = xyz_in.size(0), n = xyz_in.size(1);
  at::Tensor out = at::empty({batches, num_samples}, xyz_in.options().dtype(at::kLong));
  if (batches == 0 || num_samples == 0) return out;
  const at::Tensor xyz = xyz_in.contiguous();
  int64_t* out_ptr = out.data_ptr<int64_t>();
  const bool split_points = batches < parallel_threads() && n >= 16384;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xyz.scalar_type(), "farthest_point_sample_cpu", [&] {
    const scalar_t* data = xyz.const_data_ptr<scalar_t>();
    auto run = [&](int64_t b) {
      fps_cloud(data + b * n * 3, n, num_samples, start_index, out_ptr + b * num_samples, split_points);
    };
    if (split_points) {
      for (int64_t b = 0; b < batches; ++b) run(b);
    } else {
      parallel_for(0, batches, 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) run(b);
      });
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) { m.impl("farthest_point_sample", cpu_op<&fps_cpu>); }

}  // namespace ppt
