// CPU space-filling-curve encode / decode (PTv3 serialization): one independent code per point.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "point/serialization_checks.h"
#include "ppt/serialization.h"

namespace ppt {
namespace {

constexpr int64_t kGrain = 4096;

at::Tensor serialization_encode_cpu(const at::Tensor& grid_coord_in, const std::optional<at::Tensor>& batch_in,
                                    int64_t depth, c10::string_view order) {
  const SerializationOrder parsed = check_serialization_encode_args(grid_coord_in, batch_in, depth, order);
  const at::Tensor grid_coord = grid_coord_in.contiguous();
  const int64_t n = grid_coord.size(0);
  at::Tensor code = at::empty({n}, grid_coord.options().dtype(at::kLong));
  const at::Tensor batch = batch_in.has_value() ? batch_in->to(at::kLong).contiguous() : at::Tensor();
  const int64_t* batch_ptr = batch.defined() ? batch.const_data_ptr<int64_t>() : nullptr;
  int64_t* out = code.data_ptr<int64_t>();
  AT_DISPATCH_INDEX_TYPES(grid_coord.scalar_type(), "serialization_encode_cpu", [&] {
    const index_t* grid = grid_coord.const_data_ptr<index_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        out[i] = serialization_code(grid[3 * i], grid[3 * i + 1], grid[3 * i + 2], batch_ptr ? batch_ptr[i] : 0,
                                    static_cast<int>(depth), parsed.curve, parsed.transposed);
      }
    });
  });
  return code;
}

std::tuple<at::Tensor, at::Tensor> serialization_decode_cpu(const at::Tensor& code_in, int64_t depth,
                                                            c10::string_view order) {
  const SerializationOrder parsed = check_serialization_decode_args(code_in, depth, order);
  const at::Tensor code = code_in.contiguous();
  const int64_t n = code.size(0);
  at::Tensor grid_coord = at::empty({n, 3}, code.options());
  at::Tensor batch = at::empty({n}, code.options());
  const int64_t* in = code.const_data_ptr<int64_t>();
  int64_t* grid = grid_coord.data_ptr<int64_t>();
  int64_t* batch_out = batch.data_ptr<int64_t>();
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      serialization_decode_one(in[i], static_cast<int>(depth), parsed.curve, parsed.transposed, grid + 3 * i,
                               batch_out + i);
    }
  });
  return {grid_coord, batch};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("serialization_encode", &serialization_encode_cpu);
  m.impl("serialization_decode", &serialization_decode_cpu);
}

}  // namespace ppt
