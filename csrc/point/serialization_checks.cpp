#include "point/serialization_checks.h"

#include <ATen/ops/aminmax.h>
#include <ATen/ops/min.h>

#include <cstdint>
#include <string>

#include "ppt/tensor_checks.h"

namespace ppt {
namespace {

void check_depth(const char* op, int64_t depth) {
  TORCH_CHECK(depth >= 0 && depth <= kMaxSerializationDepth, op, ": depth must be in [0, ",
              kMaxSerializationDepth, "] (3 * depth coordinate bits in an int64 code), got ", depth);
}

void check_index_dtype(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kInt || t.scalar_type() == at::kLong, op, ": ", name,
              " must have dtype Int or Long, got ", t.scalar_type());
}

// lo <= every element of t < hi (t non-empty).
void check_range(const char* op, const char* name, const at::Tensor& t, int64_t lo, int64_t hi, const char* why) {
  const auto [min_value, max_value] = at::aminmax(t);
  const int64_t low = min_value.item<int64_t>(), high = max_value.item<int64_t>();
  TORCH_CHECK(low >= lo && high < hi, op, ": ", name, " must be in [", lo, ", ", hi, ") ", why, ", got values in [",
              low, ", ", high, "]");
}

}  // namespace

SerializationOrder parse_serialization_order(const char* op, c10::string_view order) {
  if (order == "z") return {SerializationCurve::kZOrder, false};
  if (order == "z-trans") return {SerializationCurve::kZOrder, true};
  if (order == "hilbert") return {SerializationCurve::kHilbert, false};
  if (order == "hilbert-trans") return {SerializationCurve::kHilbert, true};
  TORCH_CHECK(false, op, ": order must be one of \"z\", \"z-trans\", \"hilbert\", \"hilbert-trans\", got \"",
              std::string(order), "\"");
}

SerializationOrder check_serialization_encode_args(const at::Tensor& grid_coord, const std::optional<at::Tensor>& batch,
                                                   int64_t depth, c10::string_view order) {
  constexpr const char* op = "serialization_encode";
  const SerializationOrder parsed = parse_serialization_order(op, order);
  check_depth(op, depth);
  check_index_dtype(op, "grid_coord", grid_coord);
  check_dim(op, "grid_coord", grid_coord, 2, "(N, 3)");
  check_last_dim(op, "grid_coord", grid_coord, 3, "(N, 3)");
  const int64_t n = grid_coord.size(0);
  if (batch.has_value()) {
    check_index_dtype(op, "batch", *batch);
    check_same_device(op, "grid_coord", grid_coord, "batch", *batch);
    TORCH_CHECK(batch->dim() == 1 && batch->size(0) == n, op, ": batch must have shape (N,) with N=", n,
                " rows of grid_coord, got ", shape_string(*batch));
  }
  if (n == 0) return parsed;
  check_range(op, "grid_coord", grid_coord, 0, int64_t(1) << depth, "(depth bits per axis)");
  if (batch.has_value()) {
    // Codes stay non-negative int64: 63 - 3 * depth bits remain for the batch index.
    const int64_t batch_limit = depth == 0 ? INT64_MAX : int64_t(1) << (63 - 3 * depth);
    check_range(op, "batch", *batch, 0, batch_limit, "(the bits above 3 * depth in an int64)");
  }
  return parsed;
}

SerializationOrder check_serialization_decode_args(const at::Tensor& code, int64_t depth, c10::string_view order) {
  constexpr const char* op = "serialization_decode";
  const SerializationOrder parsed = parse_serialization_order(op, order);
  check_depth(op, depth);
  check_dtype(op, "code", code, at::kLong);
  check_dim(op, "code", code, 1, "(N,)");
  if (code.numel() > 0) {
    const int64_t low = code.min().item<int64_t>();
    TORCH_CHECK(low >= 0, op, ": code must be non-negative (batch << 3 * depth | coordinate bits), got ", low);
  }
  return parsed;
}

}  // namespace ppt
