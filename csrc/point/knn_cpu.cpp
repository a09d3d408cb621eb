// CPU brute-force kNN over a structure-of-arrays copy of the points: blocks of distances are
// filtered against the current k-th best and only the survivors reach a bounded sorted list.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "point/point_checks.h"
#include "ppt/cpu_parallel.h"
#include "ppt/geometry.h"

namespace ppt {
namespace {

// The k best so far; an equal distance never displaces an earlier (lower) index.
template <typename acc_t>
struct SortedTopK {
  int64_t k;
  int64_t count = 0;
  acc_t* dist;
  int64_t* index;

  acc_t worst() const { return count == k ? dist[k - 1] : std::numeric_limits<acc_t>::infinity(); }

  void offer(acc_t d, int64_t j) {
    if (d < worst()) count = insert_sorted(dist, index, count, k, d, j);
  }
};

// Distances to a block of points are computed in a vectorizable loop; a block with no distance
// below the current k-th best is skipped, otherwise its candidates are compacted without branches
// (an unpredictable branch per point costs more than the distance itself) and offered in order.
template <typename acc_t>
void scan_points(const acc_t* px, const acc_t* py, const acc_t* pz, int64_t n, acc_t qx, acc_t qy,
                 acc_t qz, SortedTopK<acc_t>& top) {
  constexpr int64_t kBlock = 64;
  acc_t block[kBlock];
  int32_t candidates[kBlock];
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t len = std::min(kBlock, n - start);
    for (int64_t j = 0; j < len; ++j) {
      block[j] = squared_distance3(px[start + j], py[start + j], pz[start + j], qx, qy, qz);
    }
    const acc_t worst = top.worst();
    int any_below = 0;
    for (int64_t j = 0; j < len; ++j) any_below |= block[j] < worst;
    if (!any_below) continue;
    int64_t count = 0;
    for (int64_t j = 0; j < len; ++j) {
      candidates[count] = static_cast<int32_t>(j);
      count += block[j] < worst;
    }
    for (int64_t c = 0; c < count; ++c) top.offer(block[candidates[c]], start + candidates[c]);
  }
}

template <typename scalar_t>
void knn_kernel(const scalar_t* query, const scalar_t* points, int64_t batches, int64_t m,
                int64_t n, int64_t k, scalar_t* dist_out, int64_t* index_out) {
  using acc_t = at::opmath_type<scalar_t>;
  std::vector<acc_t> soa(batches * 3 * n);
  // at least kCopyGrain points per chunk of the copy: a small one runs on the calling thread
  constexpr int64_t kCopyGrain = 65536;
  parallel_for(0, batches, std::max<int64_t>(1, kCopyGrain / std::max<int64_t>(1, n)), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t j = 0; j < n; ++j) {
        for (int a = 0; a < 3; ++a) {
          soa[(b * 3 + a) * n + j] = static_cast<acc_t>(points[(b * n + j) * 3 + a]);
        }
      }
    }
  });
  parallel_for(0, batches * m, 16, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> best_dist(k);
    for (int64_t row = begin; row < end; ++row) {
      const acc_t* px = soa.data() + (row / m) * 3 * n;
      SortedTopK<acc_t> top{k, 0, best_dist.data(), index_out + row * k};
      scan_points(px, px + n, px + 2 * n, n, static_cast<acc_t>(query[row * 3]),
                  static_cast<acc_t>(query[row * 3 + 1]), static_cast<acc_t>(query[row * 3 + 2]), top);
      for (int64_t i = 0; i < k; ++i) dist_out[row * k + i] = static_cast<scalar_t>(best_dist[i]);
    }
  });
}
std::tuple<at::Tensor, at::Tensor> knn_cpu(const at::Tensor& query_in, const at::Tensor& points_in,
                                           int64_t k) {
  check_knn_args(query_in, points_in, k);
  const int64_t batches = query_in.size(0), m = query_in.size(1), n = points_in.size(1);
  at::Tensor dist = at::empty({batches, m, k}, query_in.options());
  at::Tensor index = at::empty({batches, m, k}, query_in.options().dtype(at::kLong));
  if (dist.numel() == 0) return {dist, index};
  const at::Tensor query = query_in.contiguous(), points = points_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, query.scalar_type(), "knn_cpu", [&] {
    knn_kernel(query.const_data_ptr<scalar_t>(), points.const_data_ptr<scalar_t>(), batches, m, n,
               k, dist.data_ptr<scalar_t>(), index.data_ptr<int64_t>());
  });
  return {dist, index};
}

// d(dist2)/d(query) = 2 (q - p), d(dist2)/d(point) = -2 (q - p). One thread owns a cloud's
// grad_points rows, so the accumulation order is fixed and the result deterministic.
std::tuple<at::Tensor, at::Tensor> knn_backward_cpu(const at::Tensor& grad_in, const at::Tensor& query_in,
                                                    const at::Tensor& points_in, const at::Tensor& index_in) {
  check_knn_backward_args(grad_in, query_in, points_in, index_in);
  const int64_t batches = query_in.size(0), m = query_in.size(1), n = points_in.size(1);
  const int64_t k = index_in.size(2);
  const at::Tensor grad = grad_in.contiguous(), query = query_in.contiguous();
  const at::Tensor points = points_in.contiguous(), index = index_in.contiguous();
  at::Tensor grad_query = at::zeros_like(query);
  at::Tensor grad_points = at::zeros_like(points);
  if (grad.numel() == 0) return {grad_query, grad_points};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, query.scalar_type(), "knn_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* q = query.const_data_ptr<scalar_t>();
    const scalar_t* p = points.const_data_ptr<scalar_t>();
    const int64_t* idx = index.const_data_ptr<int64_t>();
    scalar_t* gq = grad_query.data_ptr<scalar_t>();
    scalar_t* gp = grad_points.data_ptr<scalar_t>();
    parallel_for(0, batches, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> gp_acc(3 * n);
      for (int64_t b = begin; b < end; ++b) {
        std::fill(gp_acc.begin(), gp_acc.end(), acc_t(0));
        for (int64_t row = b * m; row < (b + 1) * m; ++row) {
          acc_t gq_acc[3] = {0, 0, 0};
          for (int64_t i = 0; i < k; ++i) {
            const int64_t j = idx[row * k + i];
            TORCH_CHECK(j >= 0 && j < n, "knn_backward: index entries must be in [0, N) with N=", n,
                        ", got ", j);
            const acc_t scale = 2 * static_cast<acc_t>(g[row * k + i]);
            for (int a = 0; a < 3; ++a) {
              const acc_t diff = static_cast<acc_t>(q[row * 3 + a]) - static_cast<acc_t>(p[(b * n + j) * 3 + a]);
              gq_acc[a] += scale * diff;
              gp_acc[3 * j + a] -= scale * diff;
            }
          }
          for (int a = 0; a < 3; ++a) gq[row * 3 + a] = static_cast<scalar_t>(gq_acc[a]);
        }
        for (int64_t t = 0; t < 3 * n; ++t) gp[b * n * 3 + t] = static_cast<scalar_t>(gp_acc[t]);
      }
    });
  });
  return {grad_query, grad_points};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("knn", cpu_op<&knn_cpu>);
  m.impl("knn_backward", cpu_op<&knn_backward_cpu>);
}

}  // namespace ppt
