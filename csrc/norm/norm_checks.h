// Argument validation of the segmented batch-norm ops, shared by the CPU and CUDA implementations.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <utility>

namespace ppt {

// Accumulation dtype of statistics for an input of dtype `dtype`: float32 for half inputs.
at::ScalarType segment_bn_acc_type(at::ScalarType dtype);

void check_segment_bn_stats_args(const at::Tensor& x, const at::Tensor& segment, int64_t num_segments);
void check_segment_bn_apply_args(const at::Tensor& x, const at::Tensor& segment, const at::Tensor& mean,
                                 const at::Tensor& invstd, const std::optional<at::Tensor>& weight,
                                 const std::optional<at::Tensor>& bias);
void check_segment_bn_backward_reduce_args(const at::Tensor& grad_out, const at::Tensor& x,
                                           const at::Tensor& segment, const at::Tensor& mean,
                                           const at::Tensor& invstd);
void check_segment_bn_backward_args(const at::Tensor& grad_out, const at::Tensor& x,
                                    const at::Tensor& segment, const at::Tensor& mean,
                                    const at::Tensor& invstd, const std::optional<at::Tensor>& weight,
                                    const std::optional<at::Tensor>& count,
                                    const std::optional<at::Tensor>& sum_dy,
                                    const std::optional<at::Tensor>& sum_dy_xhat);

}  // namespace ppt

namespace ppt {

// Host-side preparation shared by the CPU and CUDA wrappers (small (S, C) tables only).

// `table` itself, or a (S, C) table filled with `fill` in the dtype of `like` when absent (no affine).
at::Tensor table_or_fill(const std::optional<at::Tensor>& table, const at::Tensor& like, double fill);

// Per-(segment, channel) means of dy and dy·x̂ over each segment's rows in training, zeros in
// eval (count absent): the two projections of batch_norm_input_grad.
std::pair<at::Tensor, at::Tensor> segment_bn_grad_projections(const at::Tensor& mean,
                                                              const std::optional<at::Tensor>& count,
                                                              const std::optional<at::Tensor>& sum_dy,
                                                              const std::optional<at::Tensor>& sum_dy_xhat);

}  // namespace ppt
