#include "norm/norm_checks.h"

#include <ATen/ops/aminmax.h>
#include <ATen/ops/div.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/zeros_like.h>

#include "ppt/tensor_checks.h"

namespace ppt {
namespace {

void check_input(const char* op, const char* name, const at::Tensor& x) {
  check_floating(op, name, x);
  check_dim(op, name, x, 2, "(N, C)");
}

// segment: (N,) int64 with every id in [0, num_segments). Out-of-range ids would index the
// statistics tables out of bounds, so they are rejected before any kernel runs.
void check_segment(const char* op, const at::Tensor& x, const at::Tensor& segment, int64_t num_segments) {
  check_dtype(op, "segment", segment, at::kLong);
  TORCH_CHECK(segment.dim() == 1 && segment.size(0) == x.size(0), op,
              ": segment must have shape (N,) matching x's N=", x.size(0), ", got ",
              shape_string(segment));
  check_same_device(op, "x", x, "segment", segment);
  if (segment.numel() == 0) return;
  const auto [low, high] = at::aminmax(segment);
  const int64_t lowest = low.item<int64_t>(), highest = high.item<int64_t>();
  TORCH_CHECK(lowest >= 0 && highest < num_segments, op,
              ": segment ids must be in [0, num_segments) with num_segments=", num_segments,
              ", got ids in [", lowest, ", ", highest, "]");
}

// A per-(segment, channel) table: shape (S, C), the accumulation dtype of x, x's device.
void check_table(const char* op, const char* name, const at::Tensor& table, const at::Tensor& x,
                 int64_t num_segments, at::ScalarType dtype) {
  TORCH_CHECK(table.dim() == 2 && table.size(0) == num_segments && table.size(1) == x.size(1), op,
              ": ", name, " must have shape (num_segments, C) = (", num_segments, ", ", x.size(1),
              "), got ", shape_string(table));
  check_dtype(op, name, table, dtype);
  check_same_device(op, "x", x, name, table);
}

void check_grad_out(const char* op, const at::Tensor& grad_out, const at::Tensor& x) {
  TORCH_CHECK(grad_out.sizes() == x.sizes(), op, ": grad_out must have the shape of x ",
              shape_string(x), ", got ", shape_string(grad_out));
  check_same_dtype(op, "grad_out", grad_out, "x", x);
  check_same_device(op, "grad_out", grad_out, "x", x);
}

// mean and invstd define num_segments for the ops that take them.
int64_t check_mean_invstd(const char* op, const at::Tensor& x, const at::Tensor& mean,
                          const at::Tensor& invstd) {
  TORCH_CHECK(mean.dim() == 2, op, ": mean must have shape (num_segments, C), got ", shape_string(mean));
  const int64_t num_segments = mean.size(0);
  const at::ScalarType acc = segment_bn_acc_type(x.scalar_type());
  check_table(op, "mean", mean, x, num_segments, acc);
  check_table(op, "invstd", invstd, x, num_segments, acc);
  return num_segments;
}

}  // namespace

at::ScalarType segment_bn_acc_type(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

void check_segment_bn_stats_args(const at::Tensor& x, const at::Tensor& segment, int64_t num_segments) {
  constexpr const char* op = "segment_bn_stats";
  check_input(op, "x", x);
  TORCH_CHECK(num_segments > 0, op, ": num_segments must be positive, got ", num_segments);
  check_segment(op, x, segment, num_segments);
}

void check_segment_bn_apply_args(const at::Tensor& x, const at::Tensor& segment, const at::Tensor& mean,
                                 const at::Tensor& invstd, const std::optional<at::Tensor>& weight,
                                 const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "segment_bn_apply";
  check_input(op, "x", x);
  const int64_t num_segments = check_mean_invstd(op, x, mean, invstd);
  const at::ScalarType acc = segment_bn_acc_type(x.scalar_type());
  if (weight.has_value()) check_table(op, "weight", *weight, x, num_segments, acc);
  if (bias.has_value()) check_table(op, "bias", *bias, x, num_segments, acc);
  check_segment(op, x, segment, num_segments);
}

void check_segment_bn_backward_reduce_args(const at::Tensor& grad_out, const at::Tensor& x,
                                           const at::Tensor& segment, const at::Tensor& mean,
                                           const at::Tensor& invstd) {
  constexpr const char* op = "segment_bn_backward_reduce";
  check_input(op, "x", x);
  check_grad_out(op, grad_out, x);
  const int64_t num_segments = check_mean_invstd(op, x, mean, invstd);
  check_segment(op, x, segment, num_segments);
}

void check_segment_bn_backward_args(const at::Tensor& grad_out, const at::Tensor& x,
                                    const at::Tensor& segment, const at::Tensor& mean,
                                    const at::Tensor& invstd, const std::optional<at::Tensor>& weight,
                                    const std::optional<at::Tensor>& count,
                                    const std::optional<at::Tensor>& sum_dy,
                                    const std::optional<at::Tensor>& sum_dy_xhat) {
  constexpr const char* op = "segment_bn_backward";
  check_input(op, "x", x);
  check_grad_out(op, grad_out, x);
  const int64_t num_segments = check_mean_invstd(op, x, mean, invstd);
  const at::ScalarType acc = segment_bn_acc_type(x.scalar_type());
  if (weight.has_value()) check_table(op, "weight", *weight, x, num_segments, acc);
  const bool training = count.has_value();
  TORCH_CHECK(sum_dy.has_value() == training && sum_dy_xhat.has_value() == training, op,
              ": count, sum_dy and sum_dy_xhat must be given together (training) or all be None (eval)");
  if (training) {
    check_dtype(op, "count", *count, at::kLong);
    TORCH_CHECK(count->dim() == 1 && count->size(0) == num_segments, op,
                ": count must have shape (num_segments,) = (", num_segments, ",), got ",
                shape_string(*count));
    check_same_device(op, "x", x, "count", *count);
    check_table(op, "sum_dy", *sum_dy, x, num_segments, acc);
    check_table(op, "sum_dy_xhat", *sum_dy_xhat, x, num_segments, acc);
  }
  check_segment(op, x, segment, num_segments);
}

at::Tensor table_or_fill(const std::optional<at::Tensor>& table, const at::Tensor& like, double fill) {
  return table.has_value() ? table->contiguous() : at::full_like(like, fill, at::MemoryFormat::Contiguous);
}

std::pair<at::Tensor, at::Tensor> segment_bn_grad_projections(const at::Tensor& mean,
                                                              const std::optional<at::Tensor>& count,
                                                              const std::optional<at::Tensor>& sum_dy,
                                                              const std::optional<at::Tensor>& sum_dy_xhat) {
  if (!count.has_value()) return {at::zeros_like(mean), at::zeros_like(mean)};
  // Absent segments have count 0 and zero sums; clamping keeps their (unused) entries finite.
  const at::Tensor rows = count->clamp_min(1).to(mean.scalar_type()).unsqueeze(1);
  return {at::div(*sum_dy, rows).contiguous(), at::div(*sum_dy_xhat, rows).contiguous()};
}

}  // namespace ppt
