// CUDA sparse convolution as gather-GEMM-scatter: for each kernel offset k the rows of its pairs
// are gathered into a dense block (conv_cuda.cu), multiplied with the offset's weight matrix by
// cuBLAS (at::mm_out; half inputs natively with float32 accumulation) and added to the output
// rows. Offsets run one after another and the output rows of one offset's pairs are distinct
// (sparse_kernel_map guarantees it), so no two writes ever race: every result is deterministic,
// run to run, without float atomics.
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ppt/tensor_checks.h"
#include "sparse/sparse_checks.h"
#include "sparse/sparse_cuda.h"

namespace ppt {
namespace {

// dst (P, C) = src[rows] for src (N, C); both contiguous and of the same dtype.
void gather_rows(const at::Tensor& src, const at::Tensor& rows, at::Tensor& dst) {
  launch_gather_rows(src.const_data_ptr(), float_kind(src.scalar_type()), rows.const_data_ptr<int32_t>(), rows.size(0),
                     src.size(1), dst.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// dst[rows[p]] += src[p] for distinct rows; dst is the accumulator (float32 for half src).
void scatter_add_rows(const at::Tensor& src, const at::Tensor& rows, at::Tensor& dst) {
  TORCH_INTERNAL_ASSERT(src.is_contiguous() && dst.is_contiguous() &&
                        dst.scalar_type() == (src.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  launch_scatter_add_rows(src.const_data_ptr(), float_kind(src.scalar_type()), rows.const_data_ptr<int32_t>(), rows.size(0),
                          src.size(1), dst.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

int64_t largest_offset(const std::vector<int64_t>& offsets) {
  int64_t most = 0;
  for (size_t k = 0; k + 1 < offsets.size(); ++k) most = std::max(most, offsets[k + 1] - offsets[k]);
  return most;
}

// dst (num_dst, Cb) = sum_k scatter(gather(src, src_rows_k) @ weight_k, dst_rows_k) where
// weight (K, Ca, Cb) and pairs of offset k lie in [offsets[k], offsets[k+1]).
at::Tensor gather_gemm_scatter(const at::Tensor& src, const at::Tensor& weight, const at::Tensor& src_rows,
                               const at::Tensor& dst_rows, const std::vector<int64_t>& offsets, int64_t num_dst) {
  const at::Tensor source = src.contiguous();
  const int64_t in_channels = weight.size(1), out_channels = weight.size(2);
  at::Tensor accumulator = at::zeros({num_dst, out_channels}, src.options().dtype(at::toOpMathType(src.scalar_type())));
  const int64_t most = largest_offset(offsets);
  if (most == 0 || in_channels == 0 || out_channels == 0) return accumulator.to(src.scalar_type());
  at::Tensor gathered = at::empty({most, in_channels}, source.options());
  at::Tensor product = at::empty({most, out_channels}, source.options());
  for (size_t k = 0; k + 1 < offsets.size(); ++k) {
    const int64_t start = offsets[k], count = offsets[k + 1] - offsets[k];
    if (count == 0) continue;
    at::Tensor gathered_k = gathered.narrow(0, 0, count);
    at::Tensor product_k = product.narrow(0, 0, count);
    gather_rows(source, src_rows.narrow(0, start, count), gathered_k);
    at::mm_out(product_k, gathered_k, weight[k]);
    scatter_add_rows(product_k, dst_rows.narrow(0, start, count), accumulator);
  }
  return accumulator.to(src.scalar_type());
}

at::Tensor sparse_conv_cuda(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& pairs,
                            const at::Tensor& pair_offsets, int64_t num_out) {
  const c10::cuda::CUDAGuard guard(features.device());
  const std::vector<int64_t> offsets =
      check_conv_args("sparse_conv", features, weight, pairs, pair_offsets, num_out);
  const at::Tensor rows = pairs.contiguous();
  // weight (Cout, K, Cin) -> per offset (Cin, Cout)
  return gather_gemm_scatter(features, weight.permute({1, 2, 0}), rows[0], rows[1], offsets, num_out);
}

std::tuple<at::Tensor, at::Tensor> sparse_conv_backward_cuda(const at::Tensor& grad_out, const at::Tensor& features,
                                                             const at::Tensor& weight, const at::Tensor& pairs,
                                                             const at::Tensor& pair_offsets, int64_t num_out) {
  const c10::cuda::CUDAGuard guard(features.device());
  const std::vector<int64_t> offsets =
      check_conv_args("sparse_conv_backward", features, weight, pairs, pair_offsets, num_out);
  check_conv_backward_grad(grad_out, features, weight, num_out);
  const at::Tensor rows = pairs.contiguous();
  const at::Tensor in_rows = rows[0], out_rows = rows[1];
  // The adjoint of the forward is the same pair list read backwards with the weight transposed
  // per offset: weight (Cout, K, Cin) -> (Cout, Cin) per offset.
  at::Tensor grad_features =
      gather_gemm_scatter(grad_out, weight.permute({1, 0, 2}), out_rows, in_rows, offsets, features.size(0));

  const int64_t volume = weight.size(1), in_channels = weight.size(2), out_channels = weight.size(0);
  const at::Tensor grad = grad_out.contiguous();
  const at::Tensor input = features.contiguous();
  // Per offset grad_weight[:, k, :] = grad[out_rows_k]^T @ input[in_rows_k], built as (K, Cout, Cin).
  at::Tensor grad_weight_k = at::zeros({volume, out_channels, in_channels}, input.options());
  const int64_t most = largest_offset(offsets);
  if (most > 0 && in_channels > 0 && out_channels > 0) {
    at::Tensor grad_rows = at::empty({most, out_channels}, input.options());
    at::Tensor input_rows = at::empty({most, in_channels}, input.options());
    for (int64_t k = 0; k < volume; ++k) {
      const int64_t start = offsets[k], count = offsets[k + 1] - offsets[k];
      if (count == 0) continue;
      at::Tensor grad_k = grad_rows.narrow(0, 0, count);
      at::Tensor input_k = input_rows.narrow(0, 0, count);
      gather_rows(grad, out_rows.narrow(0, start, count), grad_k);
      gather_rows(input, in_rows.narrow(0, start, count), input_k);
      at::Tensor slot = grad_weight_k[k];
      at::mm_out(slot, grad_k.t(), input_k);
    }
  }
  return {grad_features, grad_weight_k.permute({1, 0, 2}).contiguous().to(weight.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("sparse_conv", &sparse_conv_cuda);
  m.impl("sparse_conv_backward", &sparse_conv_backward_cuda);
}

}  // namespace ppt
