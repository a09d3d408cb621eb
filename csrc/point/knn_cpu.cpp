// CPU brute-force kNN: distances to a block of points are computed in a vectorizable loop over a
// structure-of-arrays copy, then merged into a bounded sorted list of the k best.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <vector>

#include "point/point_checks.h"
#include "ppt/geometry.h"

namespace ppt {
namespace {

constexpr int64_t kBlock = 512;

// best_dist/best_index hold `count` entries sorted by (distance, index). Candidates arrive in
// increasing index order, so an equal distance never displaces an earlier entry.
template <typename acc_t>
void offer(acc_t d, int64_t j, int64_t k, int64_t& count, acc_t* best_dist, int64_t* best_index) {
  if (count == k && !(d < best_dist[k - 1])) return;
  int64_t p = count < k ? count++ : k - 1;
  while (p > 0 && best_dist[p - 1] > d) {
    best_dist[p] = best_dist[p - 1];
    best_index[p] = best_index[p - 1];
    --p;
  }
  best_dist[p] = d;
  best_index[p] = j;
}

template <typename scalar_t>
void knn_kernel(const scalar_t* query, const scalar_t* points, int64_t batches, int64_t m,
                int64_t n, int64_t k, scalar_t* dist_out, int64_t* index_out) {
  using acc_t = at::opmath_type<scalar_t>;
  std::vector<acc_t> soa(batches * 3 * n);
  at::parallel_for(0, batches, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t j = 0; j < n; ++j) {
        for (int a = 0; a < 3; ++a) {
          soa[(b * 3 + a) * n + j] = static_cast<acc_t>(points[(b * n + j) * 3 + a]);
        }
      }
    }
  });
  at::parallel_for(0, batches * m, 16, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> block(kBlock), best_dist(k);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / m;
      const acc_t* px = soa.data() + b * 3 * n;
      const acc_t* py = px + n;
      const acc_t* pz = py + n;
      const acc_t qx = static_cast<acc_t>(query[row * 3]);
      const acc_t qy = static_cast<acc_t>(query[row * 3 + 1]);
      const acc_t qz = static_cast<acc_t>(query[row * 3 + 2]);
      int64_t* best_index = index_out + row * k;
      int64_t count = 0;
      for (int64_t start = 0; start < n; start += kBlock) {
        const int64_t len = std::min(kBlock, n - start);
        for (int64_t j = 0; j < len; ++j) {
          block[j] = squared_distance3(px[start + j], py[start + j], pz[start + j], qx, qy, qz);
        }
        for (int64_t j = 0; j < len; ++j) {
          offer(block[j], start + j, k, count, best_dist.data(), best_index);
        }
      }
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
    at::parallel_for(0, batches, 1, [&](int64_t begin, int64_t end) {
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
  m.impl("knn", &knn_cpu);
  m.impl("knn_backward", &knn_backward_cpu);
}

}  // namespace ppt
