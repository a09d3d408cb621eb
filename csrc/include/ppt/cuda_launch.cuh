// Kernel launches and dynamic shared memory spelled so that the same .cu sources also build for
// the CPU emulation of CUDA (csrc/emulation/cuda_compat.h defines both macros there):
//   PPT_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...)   kernel<<<...>>>(args...)
//   PPT_LAUNCH((kernel<A, B>), ...)                                  a name holding a comma
//   PPT_DYNAMIC_SHARED(T, name);                                     extern __shared__ T name[]
#pragma once

#if !defined(PPT_CUDA_EMULATION)
#define PPT_LAUNCH(kernel, grid, block, shared_bytes, stream) kernel<<<grid, block, shared_bytes, stream>>>
#define PPT_DYNAMIC_SHARED(type, name) extern __shared__ __align__(16) type name[]
#endif
