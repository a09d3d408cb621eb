// Argument validation of the serialization ops, shared by the CPU and CUDA implementations.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>

#include "ppt/serialization.h"

namespace ppt {

struct SerializationOrder {
  SerializationCurve curve;
  bool transposed;  // the "-trans" orders encode (y, x, z)
};

// Parses "z", "z-trans", "hilbert" or "hilbert-trans".
SerializationOrder parse_serialization_order(const char* op, c10::string_view order);

// grid_coord (N, 3) int32/int64 in [0, 2^depth), batch (N,) int32/int64 in [0, 2^(63 - 3*depth))
// on the same device, 0 <= depth <= 21. Reads the value ranges (one device sync on CUDA).
SerializationOrder check_serialization_encode_args(const at::Tensor& grid_coord, const std::optional<at::Tensor>& batch,
                                                   int64_t depth, c10::string_view order);

// code (N,) int64, non-negative; 0 <= depth <= 21.
SerializationOrder check_serialization_decode_args(const at::Tensor& code, int64_t depth, c10::string_view order);

}  // namespace ppt
