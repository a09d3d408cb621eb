#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "point/point_checks.h"
#include "point/point_cuda.h"
#include "ppt/cuda_glue.h"

namespace ppt {
namespace {

std::tuple<at::Tensor, at::Tensor> knn_cuda(const at::Tensor& query_in, const at::Tensor& points_in,
                                            int64_t k) {
  check_knn_args(query_in, points_in, k);
  const c10::cuda::CUDAGuard guard(query_in.device());
  const int64_t batches = query_in.size(0), m = query_in.size(1), n = points_in.size(1);
  const at::ScalarType acc = acc_dtype(query_in.scalar_type());
  at::Tensor dist = at::empty({batches, m, k}, query_in.options().dtype(acc));
  at::Tensor index = at::empty({batches, m, k}, query_in.options().dtype(at::kLong));
  if (dist.numel() > 0) {
    const at::Tensor query = query_in.contiguous(), points = points_in.contiguous();
    cuda::knn(float_kind(query.scalar_type()), query.const_data_ptr(), points.const_data_ptr(),
              batches, m, n, k, dist.data_ptr(), index.data_ptr<int64_t>(), current_stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {dist.to(query_in.scalar_type()), index};
}

std::tuple<at::Tensor, at::Tensor> knn_backward_cuda(const at::Tensor& grad_in, const at::Tensor& query_in,
                                                     const at::Tensor& points_in, const at::Tensor& index_in) {
  check_knn_backward_args(grad_in, query_in, points_in, index_in);
  const c10::cuda::CUDAGuard guard(query_in.device());
  const int64_t batches = query_in.size(0), m = query_in.size(1), n = points_in.size(1);
  const int64_t k = index_in.size(2);
  const at::ScalarType acc = acc_dtype(query_in.scalar_type());
  at::Tensor grad_query = at::zeros(query_in.sizes(), query_in.options().dtype(acc));
  at::Tensor grad_points = at::zeros(points_in.sizes(), points_in.options().dtype(acc));
  if (grad_in.numel() > 0) {
    const at::Tensor grad = grad_in.contiguous(), query = query_in.contiguous();
    const at::Tensor points = points_in.contiguous(), index = index_in.contiguous();
    cuda::knn_backward(float_kind(query.scalar_type()), grad.const_data_ptr(), query.const_data_ptr(),
                       points.const_data_ptr(), index.const_data_ptr<int64_t>(), batches, m, n, k,
                       grad_query.data_ptr(), grad_points.data_ptr(), current_stream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {grad_query.to(query_in.scalar_type()), grad_points.to(points_in.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("knn", &knn_cuda);
  m.impl("knn_backward", &knn_backward_cuda);
}

}  // namespace ppt
