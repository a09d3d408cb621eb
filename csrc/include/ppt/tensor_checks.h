// Host-side argument validation shared by every op wrapper (CPU and CUDA). Messages name the op,
// the argument and what was expected, so users never meet a segfault or silent garbage.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "ppt/common.h"

namespace ppt {

// The FloatKind handed to torch-free CUDA launchers for a tensor of this dtype.
inline FloatKind float_kind(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf: return FloatKind::kHalf;
    case at::kBFloat16: return FloatKind::kBFloat16;
    case at::kFloat: return FloatKind::kFloat;
    case at::kDouble: return FloatKind::kDouble;
    default: TORCH_CHECK(false, "expected a float16, bfloat16, float32 or float64 tensor, got ", dtype);
  }
}

inline std::string shape_string(const at::Tensor& t) { return c10::str(t.sizes()); }

inline void check_floating(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name,
              " must be a floating-point tensor (float16, bfloat16, float32 or float64), got ",
              t.scalar_type());
}

inline void check_dtype(const char* op, const char* name, const at::Tensor& t, at::ScalarType dtype) {
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must have dtype ", dtype, ", got ",
              t.scalar_type());
}

inline void check_dim(const char* op, const char* name, const at::Tensor& t, int64_t dim,
                      const char* layout) {
  TORCH_CHECK(t.dim() == dim, op, ": ", name, " must have shape ", layout, ", got ",
              shape_string(t));
}

inline void check_last_dim(const char* op, const char* name, const at::Tensor& t, int64_t size,
                           const char* layout) {
  TORCH_CHECK(t.size(-1) == size, op, ": ", name, " must have shape ", layout, ", got ",
              shape_string(t));
}

inline void check_same_device(const char* op, const char* name_a, const at::Tensor& a,
                              const char* name_b, const at::Tensor& b) {
  TORCH_CHECK(a.device() == b.device(), op, ": ", name_a, " and ", name_b,
              " must be on the same device, got ", a.device(), " and ", b.device());
}

inline void check_same_dtype(const char* op, const char* name_a, const at::Tensor& a,
                             const char* name_b, const at::Tensor& b) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": ", name_a, " and ", name_b,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

// Largest coordinate magnitude of distance-based ops (knn, farthest point sampling). Squared
// distances are accumulated in float32 for float16/bfloat16/float32 inputs and in float64 for
// float64; a squared distance is at most 3 * (2 * bound)^2, which must stay finite there:
// 1.2e37 < 3.4e38 (float32) and 1.2e307 < 1.8e308 (float64). Beyond it, distances overflow to
// Inf, every candidate ties and the selected indices are meaningless.
inline double distance_coordinate_bound(at::ScalarType dtype) {
  return dtype == at::kDouble ? 1e153 : 1e18;
}

// Rejects NaN/Inf and coordinates beyond distance_coordinate_bound, naming the argument. One
// reduction per tensor and a single host sync for all of them.
inline void check_distance_coordinates(
    const char* op, std::initializer_list<std::pair<const char*, const at::Tensor*>> inputs) {
  std::vector<at::Tensor> extremes;
  for (const auto& [name, t] : inputs) {
    if (t->numel() == 0) continue;
    const auto [lowest, highest] = at::aminmax(*t);  // NaN propagates into both
    extremes.push_back(lowest.to(at::kDouble));
    extremes.push_back(highest.to(at::kDouble));
  }
  if (extremes.empty()) return;
  const at::Tensor host = at::stack(extremes).cpu();
  const double* value = host.const_data_ptr<double>();
  for (const auto& [name, t] : inputs) {
    if (t->numel() == 0) continue;
    const double lowest = value[0], highest = value[1];
    value += 2;
    TORCH_CHECK(std::isfinite(lowest) && std::isfinite(highest), op, ": ", name,
                " contains NaN or Inf; it must be finite");
    const bool is_double = t->scalar_type() == at::kDouble;
    const double largest = std::max(-lowest, highest), bound = distance_coordinate_bound(t->scalar_type());
    TORCH_CHECK(largest <= bound, op, ": ", name, " has a coordinate of magnitude ", largest,
                "; coordinates must be at most ", bound, " in magnitude so that squared distances fit ",
                is_double ? "float64" : "float32, the accumulation type of float16/bfloat16/float32 inputs",
                is_double ? "" : " (float64 inputs allow 1e+153)");
  }
}

}  // namespace ppt
