// CPU brute-force kNN: distances to a block of points are computed in a vectorizable loop over a
// structure-of-arrays copy, then merged into a bounded sorted list of the k best.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "point/point_checks.h"
#include "ppt/geometry.h"

namespace ppt {
namespace {

constexpr int64_t kBlock = 512;
constexpr int64_t kGroup = 32;  // bits of the hit mask

// Bounded top-k by (distance, index). Candidates that beat the current k-th best are buffered and
// merged in batches (sort the buffer, merge two sorted lists), which costs far less than an
// insertion per candidate when many arrive early in the scan.
template <typename acc_t>
class TopK {
 public:
  using Entry = std::pair<acc_t, int64_t>;  // lexicographic order = (distance, index)

  explicit TopK(int64_t k) : k_(k), capacity_(std::max<int64_t>(k, 16)) {
    best_.reserve(k);
    merged_.reserve(k);
    pending_.reserve(capacity_);
  }
  void reset() {
    best_.clear();
    pending_.clear();
    worst_ = std::numeric_limits<acc_t>::infinity();
  }
  acc_t worst() const { return worst_; }
  void push(acc_t d, int64_t j) {
    if (!(d < worst_)) return;  // an equal distance has a higher index than the k-th entry
    pending_.emplace_back(d, j);
    if (static_cast<int64_t>(pending_.size()) == capacity_) flush();
  }
  void flush() {
    std::sort(pending_.begin(), pending_.end());
    merged_.clear();
    auto a = best_.begin(), b = pending_.begin();
    while (static_cast<int64_t>(merged_.size()) < k_ && (a != best_.end() || b != pending_.end())) {
      merged_.push_back((b == pending_.end() || (a != best_.end() && *a < *b)) ? *a++ : *b++);
    }
    best_.swap(merged_);
    pending_.clear();
    if (static_cast<int64_t>(best_.size()) == k_) worst_ = best_.back().first;
  }
  const std::vector<Entry>& sorted() const { return best_; }  // valid after flush()

 private:
  int64_t k_, capacity_;
  acc_t worst_ = std::numeric_limits<acc_t>::infinity();
  std::vector<Entry> best_, merged_, pending_;
};

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
    std::vector<acc_t> block(kBlock);
    TopK<acc_t> top(k);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / m;
      const acc_t* px = soa.data() + b * 3 * n;
      const acc_t* py = px + n;
      const acc_t* pz = py + n;
      const acc_t qx = static_cast<acc_t>(query[row * 3]);
      const acc_t qy = static_cast<acc_t>(query[row * 3 + 1]);
      const acc_t qz = static_cast<acc_t>(query[row * 3 + 2]);
      top.reset();
      for (int64_t start = 0; start < n; start += kBlock) {
        const int64_t len = std::min(kBlock, n - start);
        for (int64_t j = 0; j < len; ++j) {
          block[j] = squared_distance3(px[start + j], py[start + j], pz[start + j], qx, qy, qz);
        }
        // Compare a group of kGroup distances against the k-th best at once (vectorizable) into a
        // bit mask; only the hits, few once the list has filled, reach the top-k.
        for (int64_t g = 0; g < len; g += kGroup) {
          const int64_t glen = std::min(kGroup, len - g);
          const acc_t worst = top.worst();
          uint32_t hits = 0;
          for (int64_t j = 0; j < glen; ++j) hits |= static_cast<uint32_t>(block[g + j] < worst) << j;
          while (hits != 0) {
            const int64_t j = g + __builtin_ctz(hits);
            hits &= hits - 1;
            top.push(block[j], start + j);
          }
        }
      }
      top.flush();
      const auto& best = top.sorted();
      for (int64_t i = 0; i < k; ++i) {
        dist_out[row * k + i] = static_cast<scalar_t>(best[i].first);
        index_out[row * k + i] = best[i].second;
      }
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
