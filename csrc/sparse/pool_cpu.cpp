// CPU sparse max / average pooling over a kernel map (ppt/sparse_pool.h for the update rules).
//
// Determinism without atomics: one offset's output rows (and input rows, which the backward
// writes) are distinct and every row is updated in offset order (for_each_pair_by_destination),
// so no two threads write one row: results are bitwise identical run to run and for any thread
// count. Half inputs accumulate in float32, float64 in float64.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "ppt/cpu_parallel.h"
#include "ppt/offset_pairs.h"
#include "ppt/sparse_pool.h"
#include "sparse/sparse_checks.h"

namespace ppt {
namespace {

// Destination rows per block, and pairs x channels per chunk of an offset's pairs
// (for_each_pair_by_destination): enough work to amortize claiming it.
constexpr int64_t kGrainElements = int64_t{1} << 16;

int64_t row_block(int64_t channels) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, channels)); }

at::ScalarType accumulate_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// Returns dst (num_dst, C) in the accumulation type of src (N, C) with
//   dst[to_rows[p], c] += term(from_rows[p], to_rows[p], c, src[from_rows[p], c])
// over every pair p, offsets in order; term gets the source value in the accumulation type.
template <typename Term>
at::Tensor accumulate_pairs(const at::Tensor& src, const int32_t* from_rows, const int32_t* to_rows,
                            const std::vector<int64_t>& offsets, int64_t num_dst, const Term& term) {
  const at::Tensor source = src.contiguous();
  const int64_t channels = source.size(1);
  at::Tensor dst = at::empty({num_dst, channels}, source.options().dtype(accumulate_type(source.scalar_type())));
  if (channels == 0) return dst;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, source.scalar_type(), "sparse_pool_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* values = source.const_data_ptr<scalar_t>();
    acc_t* target = dst.data_ptr<acc_t>();
    for_each_pair_by_destination(
        to_rows, offsets, num_dst, row_block(channels), row_block(channels),
        [&](int64_t first, int64_t last) { std::fill(target + first * channels, target + last * channels, acc_t(0)); },
        [&](size_t, int64_t begin, int64_t end) {
          for (int64_t p = begin; p < end; ++p) {
            const int32_t from = from_rows[p], to = to_rows[p];
            const scalar_t* src_row = values + static_cast<int64_t>(from) * channels;
            acc_t* dst_row = target + static_cast<int64_t>(to) * channels;
            for (int64_t c = 0; c < channels; ++c) dst_row[c] += term(from, to, c, static_cast<acc_t>(src_row[c]));
          }
        });
  });
  return dst;
}

std::tuple<at::Tensor, at::Tensor> sparse_max_pool_cpu(const at::Tensor& features, const at::Tensor& pairs,
                                                       const at::Tensor& pair_offsets, int64_t num_out) {
  constexpr const char* op = "sparse_max_pool";
  const std::vector<int64_t> offsets = check_pool_args(op, features, pairs, pair_offsets, num_out);
  const at::Tensor input = features.contiguous();
  const at::Tensor rows = pairs.contiguous();
  const int64_t channels = input.size(1);
  at::Tensor out = at::empty({num_out, channels}, input.options());
  at::Tensor argmax = at::empty({num_out, channels}, input.options().dtype(at::kInt));
  if (channels == 0) return {out, argmax};
  const int32_t* in_rows = rows.const_data_ptr<int32_t>();
  const int32_t* out_rows = in_rows + rows.size(1);
  int32_t* winner = argmax.data_ptr<int32_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), op, [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* source = input.const_data_ptr<scalar_t>();
    scalar_t* target = out.data_ptr<scalar_t>();
    for_each_pair_by_destination(
        out_rows, offsets, num_out, row_block(channels), row_block(channels),
        [&](int64_t first, int64_t last) {  // a row that no pair reaches stays 0, without a winner
          std::fill(target + first * channels, target + last * channels, scalar_t(0));
          std::fill(winner + first * channels, winner + last * channels, -1);
        },
        [&](size_t, int64_t begin, int64_t end) {
          for (int64_t p = begin; p < end; ++p) {
            const int32_t row = in_rows[p];
            const scalar_t* src = source + static_cast<int64_t>(row) * channels;
            const int64_t base = static_cast<int64_t>(out_rows[p]) * channels;
            scalar_t* dst = target + base;
            int32_t* won = winner + base;
            // Selects rather than branches: the outcome is data-dependent and the loop vectorizes.
            for (int64_t c = 0; c < channels; ++c) {
              const bool take = max_pool_takes<acc_t>(src[c], dst[c], won[c] < 0);
              dst[c] = take ? src[c] : dst[c];
              won[c] = take ? row : won[c];
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
  const at::Tensor rows = pairs.contiguous();
  const at::Tensor winners = argmax.contiguous();
  const int32_t* winner = winners.const_data_ptr<int32_t>();
  const int64_t channels = grad_out.size(1);
  const int32_t* in_rows = rows.const_data_ptr<int32_t>();
  // Each output element sends its gradient to the input row that won it, through the one pair
  // (i, o) that connects them.
  return accumulate_pairs(grad_out, in_rows + rows.size(1), in_rows, offsets, num_in,
                          [&](int32_t out_row, int32_t in_row, int64_t c, auto grad) {
                            return winner[static_cast<int64_t>(out_row) * channels + c] == in_row ? grad
                                                                                                  : decltype(grad)(0);
                          })
      .to(grad_out.scalar_type());
}

at::Tensor sparse_avg_pool_cpu(const at::Tensor& features, const at::Tensor& pairs, const at::Tensor& pair_offsets,
                               int64_t num_out) {
  constexpr const char* op = "sparse_avg_pool";
  const std::vector<int64_t> offsets = check_pool_args(op, features, pairs, pair_offsets, num_out);
  const at::Tensor rows = pairs.contiguous();
  const int32_t* in_rows = rows.const_data_ptr<int32_t>();
  at::Tensor sums = accumulate_pairs(features, in_rows, in_rows + rows.size(1), offsets, num_out,
                                     [](int32_t, int32_t, int64_t, auto value) { return value; });
  // The mean over the pairs that reached each row (spconv's count of real inputs, not the kernel
  // volume); a row no pair reached stays 0.
  const at::Tensor counts = at::bincount(rows[1], {}, num_out).clamp_min_(1).to(sums.scalar_type());
  return sums.div_(counts.unsqueeze(1)).to(features.scalar_type());
}

at::Tensor sparse_avg_pool_backward_cpu(const at::Tensor& grad_out, const at::Tensor& pairs,
                                        const at::Tensor& pair_offsets, int64_t num_in) {
  constexpr const char* op = "sparse_avg_pool_backward";
  const std::vector<int64_t> offsets = check_pool_backward_args(op, grad_out, at::Tensor(), pairs, pair_offsets, num_in);
  const at::Tensor rows = pairs.contiguous();
  const at::Tensor counts = at::bincount(rows[1], {}, grad_out.size(0));
  const int64_t* count = counts.const_data_ptr<int64_t>();
  const int32_t* in_rows = rows.const_data_ptr<int32_t>();
  return accumulate_pairs(grad_out, in_rows + rows.size(1), in_rows, offsets, num_in,
                          [&](int32_t out_row, int32_t, int64_t, auto grad) {
                            return grad / static_cast<decltype(grad)>(count[out_row]);
                          })
      .to(grad_out.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("sparse_max_pool", cpu_op<&sparse_max_pool_cpu>);
  m.impl("sparse_max_pool_backward", cpu_op<&sparse_max_pool_backward_cpu>);
  m.impl("sparse_avg_pool", cpu_op<&sparse_avg_pool_cpu>);
  m.impl("sparse_avg_pool_backward", cpu_op<&sparse_avg_pool_backward_cpu>);
}

}  // namespace ppt
