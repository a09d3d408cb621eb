// CUDA glue of the serialization ops: checks, allocation and launch (serialization_cuda.cu).
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "point/point_cuda.h"
#include "point/serialization_checks.h"
#include "ppt/cuda_glue.h"

namespace ppt {
namespace {

at::Tensor serialization_encode_cuda(const at::Tensor& grid_coord_in, const std::optional<at::Tensor>& batch_in,
                                     int64_t depth, c10::string_view order) {
  const SerializationOrder parsed = check_serialization_encode_args(grid_coord_in, batch_in, depth, order);
  const c10::cuda::CUDAGuard guard(grid_coord_in.device());
  const int64_t n = grid_coord_in.size(0);
  at::Tensor code = at::empty({n}, grid_coord_in.options().dtype(at::kLong));
  if (n == 0) return code;
  const at::Tensor grid_coord = grid_coord_in.contiguous();
  const at::Tensor batch = batch_in.has_value() ? batch_in->to(at::kLong).contiguous() : at::Tensor();
  cuda::serialization_encode(grid_coord.const_data_ptr(), grid_coord.scalar_type() == at::kInt,
                             batch.defined() ? batch.const_data_ptr<int64_t>() : nullptr, n, static_cast<int>(depth),
                             parsed.curve, parsed.transposed, code.data_ptr<int64_t>(), current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return code;
}

std::tuple<at::Tensor, at::Tensor> serialization_decode_cuda(const at::Tensor& code_in, int64_t depth,
                                                             c10::string_view order) {
  const SerializationOrder parsed = check_serialization_decode_args(code_in, depth, order);
  const c10::cuda::CUDAGuard guard(code_in.device());
  const int64_t n = code_in.size(0);
  at::Tensor grid_coord = at::empty({n, 3}, code_in.options());
  at::Tensor batch = at::empty({n}, code_in.options());
  if (n == 0) return {grid_coord, batch};
  const at::Tensor code = code_in.contiguous();
  cuda::serialization_decode(code.const_data_ptr<int64_t>(), n, static_cast<int>(depth), parsed.curve,
                             parsed.transposed, grid_coord.data_ptr<int64_t>(), batch.data_ptr<int64_t>(),
                             current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grid_coord, batch};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("serialization_encode", &serialization_encode_cuda);
  m.impl("serialization_decode", &serialization_decode_cuda);
}

}  // namespace ppt
