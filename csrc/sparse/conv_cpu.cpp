// CPU gather / scatter-add of feature rows for the gather-GEMM-scatter convolution; the GEMMs are
// ATen's (MKL/oneDNN/OpenBLAS) in float32 for half inputs.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>

#include "sparse/conv_plan.h"

namespace ppt {
namespace {

// Rows per task: enough work to amortize scheduling for narrow rows.
int64_t row_grain(int64_t channels) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(channels, 1)); }

void gather_rows_cpu(const at::Tensor& src, const at::Tensor& rows, at::Tensor& dst) {
  const int64_t count = rows.size(0), channels = src.size(1);
  const int64_t row_bytes = channels * src.element_size();
  const char* source = static_cast<const char*>(src.const_data_ptr());
  char* target = static_cast<char*>(dst.data_ptr());
  const int32_t* row = rows.const_data_ptr<int32_t>();
  at::parallel_for(0, count, row_grain(channels), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) std::memcpy(target + p * row_bytes, source + row[p] * row_bytes, row_bytes);
  });
}

void scatter_add_rows_cpu(const at::Tensor& src, const at::Tensor& rows, at::Tensor& dst) {
  TORCH_INTERNAL_ASSERT(src.scalar_type() == dst.scalar_type() && src.is_contiguous() && dst.is_contiguous());
  const int64_t count = rows.size(0), channels = src.size(1);
  const int32_t* row = rows.const_data_ptr<int32_t>();
  AT_DISPATCH_FLOATING_TYPES(dst.scalar_type(), "sparse_conv_scatter_add_cpu", [&] {
    const scalar_t* source = src.const_data_ptr<scalar_t>();
    scalar_t* target = dst.data_ptr<scalar_t>();
    at::parallel_for(0, count, row_grain(channels), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        scalar_t* out = target + static_cast<int64_t>(row[p]) * channels;
        const scalar_t* in = source + p * channels;
        for (int64_t c = 0; c < channels; ++c) out[c] += in[c];
      }
    });
  });
}

constexpr ConvBackend kCpuBackend{&gather_rows_cpu, &scatter_add_rows_cpu, /*gemm_in_opmath=*/true};

at::Tensor sparse_conv_cpu(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& pairs,
                           const at::Tensor& pair_offsets, int64_t num_out) {
  return sparse_conv_forward(kCpuBackend, features, weight, pairs, pair_offsets, num_out);
}

std::tuple<at::Tensor, at::Tensor> sparse_conv_backward_cpu(const at::Tensor& grad_out, const at::Tensor& features,
                                                            const at::Tensor& weight, const at::Tensor& pairs,
                                                            const at::Tensor& pair_offsets, int64_t num_out) {
  return sparse_conv_backward(kCpuBackend, grad_out, features, weight, pairs, pair_offsets, num_out);
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("sparse_conv", &sparse_conv_cpu);
  m.impl("sparse_conv_backward", &sparse_conv_backward_cpu);
}

}  // namespace ppt
