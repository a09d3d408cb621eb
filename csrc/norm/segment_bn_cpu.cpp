// CPU kernels of segmented batch norm. Rows are split into parts fixed by the sizes; each part
// walks its rows in blocks, computes exact two-pass moments of every (segment, channel) inside a
// cache-resident block and Chan-merges them into its accumulator; parts are merged in order at the
// end, so results are the same for any thread count.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "norm/norm_checks.h"
#include "ppt/cpu_parallel.h"
#include "ppt/segment_norm.h"

namespace ppt {
namespace {

constexpr int64_t kBlockRows = 256;
constexpr int64_t kElementGrain = 65536;  // elements per chunk of the element-wise loops

int64_t row_grain(int64_t channels) { return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(channels, 1)); }

// Contiguous, block-aligned row ranges [begin, end) of `parts` near-equal parts. Their number
// depends only on the sizes, never on the thread count, so neither do the results: about
// kPartRows rows per part, enough parts for idle threads to take over a descheduled one's, and
// at most kPartialBytes of per-part partial sums (but 2 parts whenever the rows allow).
struct RowParts {
  static constexpr int64_t kPartRows = 16 * kBlockRows;
  static constexpr int64_t kMaxParts = 64;
  static constexpr int64_t kPartialBytes = int64_t{16} << 20;
  int64_t rows, parts, rows_per_part;
  RowParts(int64_t n, int64_t partial_bytes_per_part)
      : rows(n), parts(count(n, partial_bytes_per_part)),
        rows_per_part(((n + parts - 1) / parts + kBlockRows - 1) / kBlockRows * kBlockRows) {}
  static int64_t count(int64_t n, int64_t partial_bytes_per_part) {
    const int64_t blocks = (n + kBlockRows - 1) / kBlockRows;
    const int64_t affordable =
        std::max<int64_t>(2, std::min(kMaxParts, kPartialBytes / std::max<int64_t>(1, partial_bytes_per_part)));
    return std::min(blocks, std::clamp<int64_t>((n + kPartRows - 1) / kPartRows, 2, affordable));
  }
  int64_t begin(int64_t part) const { return std::min(rows, part * rows_per_part); }
  int64_t end(int64_t part) const { return std::min(rows, (part + 1) * rows_per_part); }
};

template <typename scalar_t>
void stats_kernel(const scalar_t* x, const int64_t* segment, int64_t n, int64_t channels,
                  int64_t num_segments, int64_t* count_out, at::opmath_type<scalar_t>* mean_out,
                  at::opmath_type<scalar_t>* m2_out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t table = num_segments * channels;
  const RowParts split(n, table * static_cast<int64_t>(sizeof(Moments<acc_t>)));
  std::vector<Moments<acc_t>> part_moments(split.parts * table, Moments<acc_t>{0, 0, 0});
  std::vector<int64_t> part_counts(split.parts * num_segments, 0);  // exact, unlike the float counts
  parallel_for(0, split.parts, 1, [&](int64_t part_begin, int64_t part_end) {
    std::vector<int64_t> block_count(num_segments, 0);
    std::vector<acc_t> block_mean(table, 0), block_m2(table, 0);
    std::vector<int64_t> present;
    for (int64_t part = part_begin; part < part_end; ++part) {
      Moments<acc_t>* moments = part_moments.data() + part * table;
      int64_t* counts = part_counts.data() + part * num_segments;
      for (int64_t r0 = split.begin(part); r0 < split.end(part); r0 += kBlockRows) {
        const int64_t r1 = std::min(r0 + kBlockRows, split.end(part));
        present.clear();
        for (int64_t i = r0; i < r1; ++i) {
          const int64_t s = segment[i];
          if (block_count[s]++ == 0) present.push_back(s);
          acc_t* sum = block_mean.data() + s * channels;
          const scalar_t* row = x + i * channels;
          for (int64_t c = 0; c < channels; ++c) sum[c] += static_cast<acc_t>(row[c]);
        }
        for (const int64_t s : present) {
          // a division, not a product with 1/count: the mean of equal values is then exact, so
          // a constant channel normalises to exactly 0 (as the CUDA kernel's shifted sums do)
          const acc_t count = static_cast<acc_t>(block_count[s]);
          for (int64_t c = 0; c < channels; ++c) block_mean[s * channels + c] /= count;
        }
        for (int64_t i = r0; i < r1; ++i) {
          const int64_t s = segment[i];
          const acc_t* mean = block_mean.data() + s * channels;
          acc_t* m2 = block_m2.data() + s * channels;
          const scalar_t* row = x + i * channels;
          for (int64_t c = 0; c < channels; ++c) {
            const acc_t d = static_cast<acc_t>(row[c]) - mean[c];
            m2[c] += d * d;
          }
        }
        for (const int64_t s : present) {
          const acc_t count = static_cast<acc_t>(block_count[s]);
          for (int64_t c = 0; c < channels; ++c) {
            const int64_t k = s * channels + c;
            chan_merge(moments[k], count, block_mean[k], block_m2[k]);
            block_mean[k] = 0;
            block_m2[k] = 0;
          }
          counts[s] += block_count[s];
          block_count[s] = 0;
        }
      }
    }
  });
  for (int64_t s = 0; s < num_segments; ++s) {
    count_out[s] = 0;
    for (int64_t part = 0; part < split.parts; ++part) count_out[s] += part_counts[part * num_segments + s];
  }
  parallel_for(0, table, 256, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      Moments<acc_t> total{0, 0, 0};
      for (int64_t part = 0; part < split.parts; ++part) {
        const Moments<acc_t>& m = part_moments[part * table + k];
        chan_merge(total, m.count, m.mean, m.m2);
      }
      mean_out[k] = total.mean;
      m2_out[k] = total.m2;
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> segment_bn_stats_cpu(const at::Tensor& x_in,
                                                                    const at::Tensor& segment_in,
                                                                    int64_t num_segments) {
  check_segment_bn_stats_args(x_in, segment_in, num_segments);
  const int64_t n = x_in.size(0), channels = x_in.size(1);
  const auto acc_options = x_in.options().dtype(segment_bn_acc_type(x_in.scalar_type()));
  at::Tensor count = at::zeros({num_segments}, segment_in.options());
  at::Tensor mean = at::zeros({num_segments, channels}, acc_options);
  at::Tensor m2 = at::zeros({num_segments, channels}, acc_options);
  if (n == 0) return {count, mean, m2};
  const at::Tensor x = x_in.contiguous(), segment = segment_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "segment_bn_stats_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    stats_kernel(x.const_data_ptr<scalar_t>(), segment.const_data_ptr<int64_t>(), n, channels,
                 num_segments, count.data_ptr<int64_t>(), mean.data_ptr<acc_t>(), m2.data_ptr<acc_t>());
  });
  return {count, mean, m2};
}

at::Tensor segment_bn_apply_cpu(const at::Tensor& x_in, const at::Tensor& segment_in,
                                const at::Tensor& mean_in, const at::Tensor& invstd_in,
                                const std::optional<at::Tensor>& weight_in,
                                const std::optional<at::Tensor>& bias_in) {
  check_segment_bn_apply_args(x_in, segment_in, mean_in, invstd_in, weight_in, bias_in);
  at::Tensor y = at::empty(x_in.sizes(), x_in.options());
  if (y.numel() == 0) return y;
  const int64_t n = x_in.size(0), channels = x_in.size(1);
  const at::Tensor x = x_in.contiguous(), segment = segment_in.contiguous();
  const at::Tensor mean = mean_in.contiguous(), invstd = invstd_in.contiguous();
  const at::Tensor weight = table_or_fill(weight_in, mean, 1.0), bias = table_or_fill(bias_in, mean, 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "segment_bn_apply_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const int64_t* seg = segment.const_data_ptr<int64_t>();
    const acc_t *mp = mean.const_data_ptr<acc_t>(), *ip = invstd.const_data_ptr<acc_t>();
    const acc_t *wp = weight.const_data_ptr<acc_t>(), *bp = bias.const_data_ptr<acc_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    parallel_for(0, n, row_grain(channels),
                     [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t k0 = seg[i] * channels;
        for (int64_t c = 0; c < channels; ++c) {
          yp[i * channels + c] = static_cast<scalar_t>(normalize_affine(
              static_cast<acc_t>(xp[i * channels + c]), mp[k0 + c], ip[k0 + c], wp[k0 + c], bp[k0 + c]));
        }
      }
    });
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> segment_bn_backward_reduce_cpu(const at::Tensor& grad_in,
                                                                  const at::Tensor& x_in,
                                                                  const at::Tensor& segment_in,
                                                                  const at::Tensor& mean_in,
                                                                  const at::Tensor& invstd_in) {
  check_segment_bn_backward_reduce_args(grad_in, x_in, segment_in, mean_in, invstd_in);
  const int64_t n = x_in.size(0), channels = x_in.size(1), num_segments = mean_in.size(0);
  at::Tensor sum_dy = at::zeros_like(mean_in, at::MemoryFormat::Contiguous);
  at::Tensor sum_dy_xhat = at::zeros_like(mean_in, at::MemoryFormat::Contiguous);
  if (n == 0 || channels == 0) return {sum_dy, sum_dy_xhat};
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(), segment = segment_in.contiguous();
  const at::Tensor mean = mean_in.contiguous(), invstd = invstd_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "segment_bn_backward_reduce_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t *dyp = grad.const_data_ptr<scalar_t>(), *xp = x.const_data_ptr<scalar_t>();
    const int64_t* seg = segment.const_data_ptr<int64_t>();
    const acc_t *mp = mean.const_data_ptr<acc_t>(), *ip = invstd.const_data_ptr<acc_t>();
    const int64_t table = num_segments * channels;
    const RowParts split(n, 2 * table * static_cast<int64_t>(sizeof(acc_t)));
    // Per part: sums of dy and dy·(x - mean); block partial sums keep the rounding error of
    // long segments small (sum of ~N/kBlockRows block totals instead of N single terms).
    std::vector<acc_t> part_dy(split.parts * table, 0), part_dy_xmu(split.parts * table, 0);
    parallel_for(0, split.parts, 1, [&](int64_t part_begin, int64_t part_end) {
      std::vector<acc_t> block_dy(table, 0), block_dy_xmu(table, 0);
      std::vector<char> seen(num_segments, 0);
      std::vector<int64_t> present;
      for (int64_t part = part_begin; part < part_end; ++part) {
        acc_t* total_dy = part_dy.data() + part * table;
        acc_t* total_dy_xmu = part_dy_xmu.data() + part * table;
        for (int64_t r0 = split.begin(part); r0 < split.end(part); r0 += kBlockRows) {
          const int64_t r1 = std::min(r0 + kBlockRows, split.end(part));
          present.clear();
          for (int64_t i = r0; i < r1; ++i) {
            const int64_t s = seg[i];
            if (!seen[s]) {
              seen[s] = 1;
              present.push_back(s);
            }
            const int64_t k0 = s * channels;
            for (int64_t c = 0; c < channels; ++c) {
              const acc_t dy = static_cast<acc_t>(dyp[i * channels + c]);
              block_dy[k0 + c] += dy;
              block_dy_xmu[k0 + c] += dy * (static_cast<acc_t>(xp[i * channels + c]) - mp[k0 + c]);
            }
          }
          for (const int64_t s : present) {
            for (int64_t k = s * channels; k < (s + 1) * channels; ++k) {
              total_dy[k] += block_dy[k];
              total_dy_xmu[k] += block_dy_xmu[k];
              block_dy[k] = 0;
              block_dy_xmu[k] = 0;
            }
            seen[s] = 0;
          }
        }
      }
    });
    acc_t* out_dy = sum_dy.data_ptr<acc_t>();
    acc_t* out_dy_xhat = sum_dy_xhat.data_ptr<acc_t>();
    for (int64_t k = 0; k < table; ++k) {
      acc_t dy = 0, dy_xmu = 0;
      for (int64_t part = 0; part < split.parts; ++part) {
        dy += part_dy[part * table + k];
        dy_xmu += part_dy_xmu[part * table + k];
      }
      out_dy[k] = dy;
      out_dy_xhat[k] = dy_xmu * ip[k];
    }
  });
  return {sum_dy, sum_dy_xhat};
}

at::Tensor segment_bn_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x_in,
                                   const at::Tensor& segment_in, const at::Tensor& mean_in,
                                   const at::Tensor& invstd_in, const std::optional<at::Tensor>& weight_in,
                                   const std::optional<at::Tensor>& count,
                                   const std::optional<at::Tensor>& sum_dy,
                                   const std::optional<at::Tensor>& sum_dy_xhat) {
  check_segment_bn_backward_args(grad_in, x_in, segment_in, mean_in, invstd_in, weight_in, count,
                                 sum_dy, sum_dy_xhat);
  at::Tensor grad_x = at::empty(x_in.sizes(), x_in.options());
  if (grad_x.numel() == 0) return grad_x;
  const int64_t n = x_in.size(0), channels = x_in.size(1);
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(), segment = segment_in.contiguous();
  const at::Tensor mean = mean_in.contiguous(), invstd = invstd_in.contiguous();
  const at::Tensor weight = table_or_fill(weight_in, mean, 1.0);
  const auto [mean_dy, mean_dy_xhat] = segment_bn_grad_projections(mean, count, sum_dy, sum_dy_xhat);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "segment_bn_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t *dyp = grad.const_data_ptr<scalar_t>(), *xp = x.const_data_ptr<scalar_t>();
    const int64_t* seg = segment.const_data_ptr<int64_t>();
    const acc_t *mp = mean.const_data_ptr<acc_t>(), *ip = invstd.const_data_ptr<acc_t>();
    const acc_t* wp = weight.const_data_ptr<acc_t>();
    const acc_t *pdy = mean_dy.const_data_ptr<acc_t>(), *pdx = mean_dy_xhat.const_data_ptr<acc_t>();
    scalar_t* gxp = grad_x.data_ptr<scalar_t>();
    parallel_for(0, n, row_grain(channels),
                     [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t k0 = seg[i] * channels;
        for (int64_t c = 0; c < channels; ++c) {
          const int64_t e = i * channels + c;
          gxp[e] = static_cast<scalar_t>(batch_norm_input_grad(
              static_cast<acc_t>(dyp[e]), static_cast<acc_t>(xp[e]), mp[k0 + c], ip[k0 + c],
              wp[k0 + c], pdy[k0 + c], pdx[k0 + c]));
        }
      }
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("segment_bn_stats", cpu_op<&segment_bn_stats_cpu>);
  m.impl("segment_bn_apply", cpu_op<&segment_bn_apply_cpu>);
  m.impl("segment_bn_backward_reduce", cpu_op<&segment_bn_backward_reduce_cpu>);
  m.impl("segment_bn_backward", cpu_op<&segment_bn_backward_cpu>);
}

}  // namespace ppt
