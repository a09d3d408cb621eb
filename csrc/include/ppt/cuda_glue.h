// Helpers for the *_cuda.cpp glue between ATen tensors and the torch-free CUDA launchers.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "ppt/common.h"

namespace ppt {

inline FloatKind float_kind(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf: return FloatKind::kHalf;
    case at::kBFloat16: return FloatKind::kBFloat16;
    case at::kFloat: return FloatKind::kFloat;
    case at::kDouble: return FloatKind::kDouble;
    default: TORCH_CHECK(false, "expected a float16, bfloat16, float32 or float64 tensor, got ", dtype);
  }
}

// float32 for half inputs, the input type otherwise: what kernels accumulate in.
inline at::ScalarType acc_dtype(at::ScalarType dtype) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) ? at::kFloat : dtype;
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace ppt
