// Dispatch of FloatKind to the CUDA element types (half, bfloat16, float, double) and their
// accumulation type, shared by the CUDA kernels of every op family.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "ppt/common.h"

namespace ppt::cuda {

template <typename T>
struct AccType {
  using type = T;
};
template <>
struct AccType<__half> {
  using type = float;
};
template <>
struct AccType<__nv_bfloat16> {
  using type = float;
};
template <typename T>
using acc_t = typename AccType<T>::type;

__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }

template <typename T>
struct TypeTag {
  using type = T;
};

// Returns fn(TypeTag<T>{}) with T the element type that `kind` names.
template <typename Fn>
auto dispatch_float(FloatKind kind, Fn&& fn) {
  if (kind == FloatKind::kHalf) return fn(TypeTag<__half>{});
  if (kind == FloatKind::kBFloat16) return fn(TypeTag<__nv_bfloat16>{});
  if (kind == FloatKind::kFloat) return fn(TypeTag<float>{});
  return fn(TypeTag<double>{});
}

inline unsigned grid_size(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 32 ? 65535 * 32 : blocks));
}

}  // namespace ppt::cuda
