// CUDA glue of sparse max / average pooling: checks, allocation and launch (pool_cuda.cu).
#include <ATen/ops/bincount.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "ppt/cuda_glue.h"
#include "sparse/sparse_checks.h"
#include "sparse/sparse_cuda.h"

namespace ppt {
namespace {

int64_t volume_of(const std::vector<int64_t>& offsets) { return static_cast<int64_t>(offsets.size()) - 1; }

std::tuple<at::Tensor, at::Tensor> sparse_max_pool_cuda(const at::Tensor& features, const at::Tensor& pairs,
                                                        const at::Tensor& pair_offsets, int64_t num_out) {
  const c10::cuda::CUDAGuard guard(features.device());
  const std::vector<int64_t> offsets = check_pool_args("sparse_max_pool", features, pairs, pair_offsets, num_out);
  const at::Tensor input = features.contiguous();
  const at::Tensor rows = pairs.contiguous();
  at::Tensor out = at::zeros({num_out, input.size(1)}, input.options());
  at::Tensor argmax = at::full({num_out, input.size(1)}, -1, input.options().dtype(at::kInt));
  launch_sparse_max_pool(input.const_data_ptr(), float_kind(input.scalar_type()), rows.const_data_ptr<int32_t>(),
                         rows.size(1), offsets.data(), volume_of(offsets), input.size(1), out.data_ptr(),
                         argmax.data_ptr<int32_t>(), current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, argmax};
}

at::Tensor sparse_max_pool_backward_cuda(const at::Tensor& grad_out, const at::Tensor& argmax, const at::Tensor& pairs,
                                         const at::Tensor& pair_offsets, int64_t num_in) {
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const std::vector<int64_t> offsets =
      check_pool_backward_args("sparse_max_pool_backward", grad_out, argmax, pairs, pair_offsets, num_in);
  const at::Tensor grad = grad_out.contiguous();
  const at::Tensor winners = argmax.contiguous();
  const at::Tensor rows = pairs.contiguous();
  at::Tensor grad_in = at::zeros({num_in, grad.size(1)}, grad.options().dtype(acc_dtype(grad.scalar_type())));
  launch_sparse_max_pool_backward(grad.const_data_ptr(), float_kind(grad.scalar_type()),
                                  winners.const_data_ptr<int32_t>(), rows.const_data_ptr<int32_t>(), rows.size(1),
                                  offsets.data(), volume_of(offsets), grad.size(1), grad_in.data_ptr(),
                                  current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_in.to(grad.scalar_type());
}

at::Tensor sparse_avg_pool_cuda(const at::Tensor& features, const at::Tensor& pairs, const at::Tensor& pair_offsets,
                                int64_t num_out) {
  const c10::cuda::CUDAGuard guard(features.device());
  const std::vector<int64_t> offsets = check_pool_args("sparse_avg_pool", features, pairs, pair_offsets, num_out);
  const at::Tensor input = features.contiguous();
  const at::Tensor rows = pairs.contiguous();
  at::Tensor sums = at::zeros({num_out, input.size(1)}, input.options().dtype(acc_dtype(input.scalar_type())));
  launch_sparse_pool_sums(input.const_data_ptr(), float_kind(input.scalar_type()), rows.const_data_ptr<int32_t>(),
                          rows.size(1), offsets.data(), volume_of(offsets), input.size(1), sums.data_ptr(),
                          current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // The mean over the pairs that reached each row, as on CPU; a row no pair reached stays 0.
  const at::Tensor counts = at::bincount(rows[1], {}, num_out).clamp_min_(1).to(sums.scalar_type());
  return sums.div_(counts.unsqueeze(1)).to(input.scalar_type());
}

at::Tensor sparse_avg_pool_backward_cuda(const at::Tensor& grad_out, const at::Tensor& pairs,
                                         const at::Tensor& pair_offsets, int64_t num_in) {
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const std::vector<int64_t> offsets =
      check_pool_backward_args("sparse_avg_pool_backward", grad_out, at::Tensor(), pairs, pair_offsets, num_in);
  const at::Tensor grad = grad_out.contiguous();
  const at::Tensor rows = pairs.contiguous();
  // Integer counts: bincount's atomics are exact, so this stays deterministic.
  const at::Tensor counts = at::bincount(rows[1], {}, grad.size(0));
  at::Tensor grad_in = at::zeros({num_in, grad.size(1)}, grad.options().dtype(acc_dtype(grad.scalar_type())));
  launch_sparse_avg_pool_backward(grad.const_data_ptr(), float_kind(grad.scalar_type()), rows.const_data_ptr<int32_t>(),
                                  rows.size(1), offsets.data(), volume_of(offsets), grad.size(1),
                                  counts.const_data_ptr<int64_t>(), grad_in.data_ptr(), current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_in.to(grad.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("sparse_max_pool", &sparse_max_pool_cuda);
  m.impl("sparse_max_pool_backward", &sparse_max_pool_backward_cuda);
  m.impl("sparse_avg_pool", &sparse_avg_pool_cuda);
  m.impl("sparse_avg_pool_backward", &sparse_avg_pool_backward_cuda);
}

}  // namespace ppt
