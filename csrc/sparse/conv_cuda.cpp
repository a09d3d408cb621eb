// CUDA glue of sparse_conv / sparse_conv_backward: row gathers and distinct-row scatter-adds from
// conv_cuda.cu around cuBLAS GEMMs (at::mm_out); the loop over offsets is shared with the CPU
// (conv_plan.cpp). No float atomics anywhere, so forward and backward are deterministic.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ppt/tensor_checks.h"
#include "sparse/conv_plan.h"
#include "sparse/sparse_cuda.h"

namespace ppt {
namespace {

void gather_rows_cuda(const at::Tensor& src, const at::Tensor& rows, at::Tensor& dst) {
  launch_gather_rows(src.const_data_ptr(), float_kind(src.scalar_type()), rows.const_data_ptr<int32_t>(), rows.size(0),
                     src.size(1), dst.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void scatter_add_rows_cuda(const at::Tensor& src, const at::Tensor& rows, at::Tensor& dst) {
  TORCH_INTERNAL_ASSERT(src.is_contiguous() && dst.is_contiguous() &&
                        dst.scalar_type() == (src.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  launch_scatter_add_rows(src.const_data_ptr(), float_kind(src.scalar_type()), rows.const_data_ptr<int32_t>(), rows.size(0),
                          src.size(1), dst.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

constexpr ConvBackend kCudaBackend{&gather_rows_cuda, &scatter_add_rows_cuda, /*gemm_in_opmath=*/false};

at::Tensor sparse_conv_cuda(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& pairs,
                            const at::Tensor& pair_offsets, int64_t num_out) {
  const c10::cuda::CUDAGuard guard(features.device());
  return sparse_conv_forward(kCudaBackend, features, weight, pairs, pair_offsets, num_out);
}

std::tuple<at::Tensor, at::Tensor> sparse_conv_backward_cuda(const at::Tensor& grad_out, const at::Tensor& features,
                                                             const at::Tensor& weight, const at::Tensor& pairs,
                                                             const at::Tensor& pair_offsets, int64_t num_out) {
  const c10::cuda::CUDAGuard guard(features.device());
  return sparse_conv_backward(kCudaBackend, grad_out, features, weight, pairs, pair_offsets, num_out);
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("sparse_conv", &sparse_conv_cuda);
  m.impl("sparse_conv_backward", &sparse_conv_backward_cuda);
}

}  // namespace ppt
