// CUDA glue of segmented batch norm: validates with the checks the CPU kernels use, allocates
// with ATen, and launches the torch-free kernels of segment_bn_cuda.cu on the current stream.
#include <ATen/ops/bincount.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include "norm/norm_checks.h"
#include "norm/norm_cuda.h"
#include "ppt/cuda_glue.h"

namespace ppt {
namespace {

void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

void check_segments_fit(const char* op, const at::Tensor& x, int64_t num_segments) {
  const int64_t limit = segment_bn_cuda_max_segments(float_kind(x.scalar_type()));
  TORCH_CHECK(num_segments <= limit, op, ": num_segments must be at most ", limit, " on CUDA for ",
              x.scalar_type(), " inputs (per-block shared-memory accumulators), got ", num_segments);
}

at::Tensor workspace(const at::Tensor& like, size_t bytes) {
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> segment_bn_stats_cuda_op(const at::Tensor& x_in,
                                                                        const at::Tensor& segment_in,
                                                                        int64_t num_segments) {
  constexpr const char* op = "segment_bn_stats";
  check_segment_bn_stats_args(x_in, segment_in, num_segments);
  check_segments_fit(op, x_in, num_segments);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const int64_t n = x_in.size(0), channels = x_in.size(1);
  const auto acc_options = x_in.options().dtype(segment_bn_acc_type(x_in.scalar_type()));
  at::Tensor count = at::zeros({num_segments}, segment_in.options());
  at::Tensor mean = at::zeros({num_segments, channels}, acc_options);
  at::Tensor m2 = at::zeros({num_segments, channels}, acc_options);
  if (n == 0) return {count, mean, m2};
  if (channels == 0) return {at::bincount(segment_in, {}, num_segments), mean, m2};
  const at::Tensor x = x_in.contiguous(), segment = segment_in.contiguous();
  const FloatKind kind = float_kind(x.scalar_type());
  at::Tensor scratch = workspace(x, segment_bn_stats_workspace_bytes(kind, n, channels, num_segments));
  check_launch(op, segment_bn_stats_cuda(kind, x.const_data_ptr(), segment.const_data_ptr<int64_t>(), n, channels,
                                         num_segments, scratch.data_ptr(), count.data_ptr<int64_t>(),
                                         mean.data_ptr(), m2.data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return {count, mean, m2};
}

at::Tensor segment_bn_apply_cuda_op(const at::Tensor& x_in, const at::Tensor& segment_in, const at::Tensor& mean_in,
                                    const at::Tensor& invstd_in, const std::optional<at::Tensor>& weight_in,
                                    const std::optional<at::Tensor>& bias_in) {
  constexpr const char* op = "segment_bn_apply";
  check_segment_bn_apply_args(x_in, segment_in, mean_in, invstd_in, weight_in, bias_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor y = at::empty(x_in.sizes(), x_in.options());
  if (y.numel() == 0) return y;
  const at::Tensor x = x_in.contiguous(), segment = segment_in.contiguous();
  const at::Tensor mean = mean_in.contiguous(), invstd = invstd_in.contiguous();
  const at::Tensor weight = table_or_fill(weight_in, mean, 1.0), bias = table_or_fill(bias_in, mean, 0.0);
  check_launch(op, segment_bn_apply_cuda(float_kind(x.scalar_type()), x.const_data_ptr(), segment.const_data_ptr<int64_t>(),
                                         x.size(0), x.size(1), mean.const_data_ptr(), invstd.const_data_ptr(),
                                         weight.const_data_ptr(), bias.const_data_ptr(), y.data_ptr(),
                                         c10::cuda::getCurrentCUDAStream()));
  return y;
}

std::tuple<at::Tensor, at::Tensor> segment_bn_backward_reduce_cuda_op(const at::Tensor& grad_in,
                                                                      const at::Tensor& x_in,
                                                                      const at::Tensor& segment_in,
                                                                      const at::Tensor& mean_in,
                                                                      const at::Tensor& invstd_in) {
  constexpr const char* op = "segment_bn_backward_reduce";
  check_segment_bn_backward_reduce_args(grad_in, x_in, segment_in, mean_in, invstd_in);
  const int64_t n = x_in.size(0), channels = x_in.size(1), num_segments = mean_in.size(0);
  check_segments_fit(op, x_in, num_segments);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor sum_dy = at::zeros_like(mean_in, at::MemoryFormat::Contiguous);
  at::Tensor sum_dy_xhat = at::zeros_like(mean_in, at::MemoryFormat::Contiguous);
  if (n == 0 || channels == 0) return {sum_dy, sum_dy_xhat};
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(), segment = segment_in.contiguous();
  const at::Tensor mean = mean_in.contiguous(), invstd = invstd_in.contiguous();
  const FloatKind kind = float_kind(x.scalar_type());
  at::Tensor scratch = workspace(x, segment_bn_backward_reduce_workspace_bytes(kind, n, channels, num_segments));
  check_launch(op, segment_bn_backward_reduce_cuda(kind, grad.const_data_ptr(), x.const_data_ptr(),
                                                   segment.const_data_ptr<int64_t>(), n, channels, num_segments,
                                                   mean.const_data_ptr(), invstd.const_data_ptr(), scratch.data_ptr(),
                                                   sum_dy.data_ptr(), sum_dy_xhat.data_ptr(),
                                                   c10::cuda::getCurrentCUDAStream()));
  return {sum_dy, sum_dy_xhat};
}

at::Tensor segment_bn_backward_cuda_op(const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& segment_in,
                                       const at::Tensor& mean_in, const at::Tensor& invstd_in,
                                       const std::optional<at::Tensor>& weight_in,
                                       const std::optional<at::Tensor>& count,
                                       const std::optional<at::Tensor>& sum_dy,
                                       const std::optional<at::Tensor>& sum_dy_xhat) {
  constexpr const char* op = "segment_bn_backward";
  check_segment_bn_backward_args(grad_in, x_in, segment_in, mean_in, invstd_in, weight_in, count, sum_dy,
                                 sum_dy_xhat);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor grad_x = at::empty(x_in.sizes(), x_in.options());
  if (grad_x.numel() == 0) return grad_x;
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(), segment = segment_in.contiguous();
  const at::Tensor mean = mean_in.contiguous(), invstd = invstd_in.contiguous();
  const at::Tensor weight = table_or_fill(weight_in, mean, 1.0);
  const auto [mean_dy, mean_dy_xhat] = segment_bn_grad_projections(mean, count, sum_dy, sum_dy_xhat);
  check_launch(op, segment_bn_backward_cuda(float_kind(x.scalar_type()), grad.const_data_ptr(), x.const_data_ptr(),
                                            segment.const_data_ptr<int64_t>(), x.size(0), x.size(1),
                                            mean.const_data_ptr(), invstd.const_data_ptr(), weight.const_data_ptr(),
                                            mean_dy.const_data_ptr(), mean_dy_xhat.const_data_ptr(),
                                            grad_x.data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("segment_bn_stats", &segment_bn_stats_cuda_op);
  m.impl("segment_bn_apply", &segment_bn_apply_cuda_op);
  m.impl("segment_bn_backward_reduce", &segment_bn_backward_reduce_cuda_op);
  m.impl("segment_bn_backward", &segment_bn_backward_cuda_op);
}

}  // namespace ppt
