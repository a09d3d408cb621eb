// Helpers for the *_cuda.cpp glue between ATen tensors and the torch-free CUDA launchers.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "ppt/common.h"
#include "ppt/tensor_checks.h"

namespace ppt {

// float32 for half inputs, the input type otherwise: what kernels accumulate in.
inline at::ScalarType acc_dtype(at::ScalarType dtype) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) ? at::kFloat : dtype;
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace ppt
