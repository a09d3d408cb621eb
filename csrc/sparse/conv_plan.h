// Gather-GEMM-scatter sparse convolution shared by the CPU and CUDA implementations. For each
// kernel offset k, the rows of its pairs are gathered into a dense block, multiplied with the
// offset's weight matrix by the ATen GEMM of the device, and added to the output rows. Offsets
// run one after another and the output rows of one offset's pairs are distinct (sparse_kernel_map
// guarantees it), so no two writes ever race: every result is deterministic, run to run,
// without float atomics.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>
#include <vector>

namespace ppt {

struct ConvBackend {
  // dst (P, C) = src[rows] for src (N, C); both contiguous and of the same dtype.
  void (*gather_rows)(const at::Tensor& src, const at::Tensor& rows, at::Tensor& dst);
  // dst[rows[p]] += src[p] for distinct rows; dst is the accumulator (float32 for half src).
  void (*scatter_add_rows)(const at::Tensor& src, const at::Tensor& rows, at::Tensor& dst);
  // Whether GEMMs of half inputs run in float32 (CPU) or natively with float32 accumulation (CUDA).
  bool gemm_in_opmath;
};

// out (num_out, Cout) = sum_k scatter(gather(features, pairs[0]) @ weight[:, k, :]^T, pairs[1]).
at::Tensor sparse_conv_forward(const ConvBackend& backend, const at::Tensor& features,
                               const at::Tensor& weight, const at::Tensor& pairs,
                               const at::Tensor& pair_offsets, int64_t num_out);

// (grad_features (N, Cin), grad_weight (Cout, K, Cin)).
std::tuple<at::Tensor, at::Tensor> sparse_conv_backward(const ConvBackend& backend, const at::Tensor& grad_out,
                                                        const at::Tensor& features, const at::Tensor& weight,
                                                        const at::Tensor& pairs, const at::Tensor& pair_offsets,
                                                        int64_t num_out);

}  // namespace ppt
