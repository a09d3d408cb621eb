// Emulation build: c10's CUDA error checks over the emulated runtime (csrc/emulation/runtime.cpp).
#pragma once

#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>

#define C10_CUDA_CHECK(EXPR)                                                                       \
  do {                                                                                             \
    const cudaError_t ppt_emulated_status = (EXPR);                                                \
    TORCH_CHECK(ppt_emulated_status == cudaSuccess, "CUDA error (emulated): ",                     \
                cudaGetErrorString(ppt_emulated_status));                                          \
  } while (0)

#define C10_CUDA_KERNEL_LAUNCH_CHECK() C10_CUDA_CHECK(cudaGetLastError())
