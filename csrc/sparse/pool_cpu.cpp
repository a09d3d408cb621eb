// CPU sparse max / average pooling over a kernel map (ppt/sparse_pool.h for the update rules).
//
// Determinism without atomics: offsets run in order and threads split one offset's pairs, whose
// output rows (and input rows, which the backward writes) are distinct, so no two threads write
// one row and every row is updated in offset order: results are bitwise identical run to run and
// for any thread count. Half inputs accumulate in float32, float64 in float64.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "ppt/sparse_pool.h"
#include "sparse/sparse_checks.h"

namespace ppt {
namespace {

// Elements (pairs x channels) per task: enough work to amortize the fork.
constexpr int64_t kGrainElements = int64_t{1} << 15;

// Runs body(begin, end) over the pair ranges of each offset in turn, threads splitting an offset.
template <typename Body>
void for_each_offset(const std::vector<int64_t>& offsets, int64_t channels, const Body& body) {
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, channels));
  for (size_t k = 0; k + 1 < offsets.size(); ++k) at::parallel_for(offsets[k], offsets[k + 1], grain, body);
}

// Number of pairs that reach each of the num_out output rows.
std::vector<int64_t> pairs_per_output(const int32_t* out_rows, int64_t num_pairs, int64_t num_out) {
  std::vector<int64_t> counts(num_out, 0);
  for (int64_t p = 0; p < num_pairs; ++p) ++counts[out_rows[p]];
  return counts;
}

at::ScalarType accumulate_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

std::tuple<at::Tensor, at::Tensor> sparse_max_pool_cpu(const at::Tensor& features, const at::Tensor& pairs,
                                                       const at::Tensor& pair_offsets, int64_t num_out) {
  constexpr const char* op = "sparse_max_pool";
  const std::vector<int64_t> offsets = check_pool_args(op, features, pairs, pair_offsets, num_out);
  const at::Tensor input = features.contiguous();
  const at::Tensor rows = pairs.contiguous();
  const int64_t channels = input.size(1);
  at::Tensor out = at::zeros({num_out, channels}, input.options());
  at::Tensor argmax = at::full({num_out, channels}, -1, input.options().dtype(at::kInt));
  if (channels == 0) return {out, argmax};
  const int32_t* in_rows = rows.const_data_ptr<int32_t>();
  const int32_t* out_rows = in_rows + rows.size(1);
  int32_t* winner = argmax.data_ptr<int32_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* source = input.const_data_ptr<scalar_t>();
    scalar_t* target = out.data_ptr<scalar_t>();
    for_each_offset(offsets, channels, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int32_t row = in_rows[p];
        const scalar_t* src = source + static_cast<int64_t>(row) * channels;
        const int64_t base = static_cast<int64_t>(out_rows[p]) * channels;
        for (int64_t c = 0; c < channels; ++c) {
          if (max_pool_takes<acc_t>(src[c], target[base + c], winner[base + c] < 0)) {
            target[base + c] = src[c];
            winner[base + c] = row;
          }
        }
      }
    });
  });
  return {out, argmax};
}

at::Tensor sparse_max_pool_backward_cpu(const at::Tensor& grad_out, const at::Tensor& argmax, const at::Tensor& pairs,
                                        const at::Tensor& pair_offsets, int64_t num_in) {
  constexpr const char* op = "sparse_max_pool_backward";
  const std::vector<int64_t> offsets = check_pool_backward_args(op, grad_out, argmax, pairs, pair_offsets, num_in);
  const at::Tensor grad = grad_out.contiguous();
  const at::Tensor winners = argmax.contiguous();
  const at::Tensor rows = pairs.contiguous();
  const int64_t channels = grad.size(1);
  at::Tensor grad_in = at::zeros({num_in, channels}, grad.options().dtype(accumulate_type(grad.scalar_type())));
  if (channels == 0) return grad_in.to(grad.scalar_type());
  const int32_t* in_rows = rows.const_data_ptr<int32_t>();
  const int32_t* out_rows = in_rows + rows.size(1);
  const int32_t* winner = winners.const_data_ptr<int32_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* source = grad.const_data_ptr<scalar_t>();
    acc_t* target = grad_in.data_ptr<acc_t>();
    // Each output element sends its gradient to the input row that won it; the pair (i, o)
    // carrying that row is visited once, in the offset that connects i and o.
    for_each_offset(offsets, channels, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int32_t row = in_rows[p];
        const int64_t from = static_cast<int64_t>(out_rows[p]) * channels;
        acc_t* dst = target + static_cast<int64_t>(row) * channels;
        for (int64_t c = 0; c < channels; ++c) {
          if (winner[from + c] == row) dst[c] += static_cast<acc_t>(source[from + c]);
        }
      }
    });
  });
  return grad_in.to(grad.scalar_type());
}

at::Tensor sparse_avg_pool_cpu(const at::Tensor& features, const at::Tensor& pairs, const at::Tensor& pair_offsets,
                               int64_t num_out) {
  constexpr const char* op = "sparse_avg_pool";
  const std::vector<int64_t> offsets = check_pool_args(op, features, pairs, pair_offsets, num_out);
  const at::Tensor input = features.contiguous();
  const at::Tensor rows = pairs.contiguous();
  const int64_t channels = input.size(1);
  at::Tensor sums = at::zeros({num_out, channels}, input.options().dtype(accumulate_type(input.scalar_type())));
  if (channels == 0) return sums.to(input.scalar_type());
  const int32_t* in_rows = rows.const_data_ptr<int32_t>();
  const int32_t* out_rows = in_rows + rows.size(1);
  const std::vector<int64_t> counts = pairs_per_output(out_rows, rows.size(1), num_out);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* source = input.const_data_ptr<scalar_t>();
    acc_t* target = sums.data_ptr<acc_t>();
    for_each_offset(offsets, channels, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* src = source + static_cast<int64_t>(in_rows[p]) * channels;
        acc_t* dst = target + static_cast<int64_t>(out_rows[p]) * channels;
        for (int64_t c = 0; c < channels; ++c) dst[c] += static_cast<acc_t>(src[c]);
      }
    });
    // The mean over the pairs that reached the row (spconv's count of real inputs, not the
    // kernel volume); a row no pair reached stays 0.
    at::parallel_for(0, num_out, std::max<int64_t>(1, kGrainElements / channels), [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        if (counts[o] == 0) continue;
        const acc_t count = static_cast<acc_t>(counts[o]);
        for (int64_t c = 0; c < channels; ++c) target[o * channels + c] /= count;
      }
    });
  });
  return sums.to(input.scalar_type());
}

at::Tensor sparse_avg_pool_backward_cpu(const at::Tensor& grad_out, const at::Tensor& pairs,
                                        const at::Tensor& pair_offsets, int64_t num_in) {
  constexpr const char* op = "sparse_avg_pool_backward";
  const std::vector<int64_t> offsets = check_pool_backward_args(op, grad_out, at::Tensor(), pairs, pair_offsets, num_in);
  const at::Tensor grad = grad_out.contiguous();
  const at::Tensor rows = pairs.contiguous();
  const int64_t channels = grad.size(1);
  at::Tensor grad_in = at::zeros({num_in, channels}, grad.options().dtype(accumulate_type(grad.scalar_type())));
  if (channels == 0) return grad_in.to(grad.scalar_type());
  const int32_t* in_rows = rows.const_data_ptr<int32_t>();
  const int32_t* out_rows = in_rows + rows.size(1);
  const std::vector<int64_t> counts = pairs_per_output(out_rows, rows.size(1), grad.size(0));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* source = grad.const_data_ptr<scalar_t>();
    acc_t* target = grad_in.data_ptr<acc_t>();
    for_each_offset(offsets, channels, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int32_t out_row = out_rows[p];
        const scalar_t* src = source + static_cast<int64_t>(out_row) * channels;
        acc_t* dst = target + static_cast<int64_t>(in_rows[p]) * channels;
        const acc_t count = static_cast<acc_t>(counts[out_row]);
        for (int64_t c = 0; c < channels; ++c) dst[c] += static_cast<acc_t>(src[c]) / count;
      }
    });
  });
  return grad_in.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("sparse_max_pool", &sparse_max_pool_cpu);
  m.impl("sparse_max_pool_backward", &sparse_max_pool_backward_cpu);
  m.impl("sparse_avg_pool", &sparse_avg_pool_cpu);
  m.impl("sparse_avg_pool_backward", &sparse_avg_pool_backward_cpu);
}

}  // namespace ppt
