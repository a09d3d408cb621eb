// Definitions shared by host code and torch-free CUDA kernels.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define PPT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PPT_HOST_DEVICE inline
#endif

namespace ppt {

// Element type of a raw buffer handed to a CUDA launcher (launchers take void pointers so that
// their declarations need neither ATen nor cuda_fp16.h).
enum class FloatKind : int { kHalf, kBFloat16, kFloat, kDouble };

}  // namespace ppt
