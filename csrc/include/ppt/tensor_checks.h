// Host-side argument validation shared by every op wrapper (CPU and CUDA). Messages name the op,
// the argument and what was expected, so users never meet a segfault or silent garbage.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>
#include <c10/util/Exception.h>

#include <string>

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

// Rejects NaN/Inf up front (e.g. distance-based selection on non-finite values is meaningless).
inline void check_all_finite(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.numel() == 0 || at::isfinite(t).all().item<bool>(), op, ": ", name,
              " contains NaN or Inf; it must be finite");
}

}  // namespace ppt
