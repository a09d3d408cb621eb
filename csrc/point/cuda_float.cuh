// Dispatch of FloatKind to the CUDA element types (half, bfloat16, float, double) and their
// accumulation type, shared by the point-op kernels.
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

template <typename T>
__device__ __forceinline__ acc_t<T> to_acc(T v) {
  return static_cast<acc_t<T>>(v);
}

// Calls fn(T{}) with T the element type that `kind` names.
template <typename Fn>
void dispatch_float(FloatKind kind, Fn&& fn) {
  switch (kind) {
    case FloatKind::kHalf: fn(__half{}); break;
    case FloatKind::kBFloat16: fn(__nv_bfloat16{}); break;
    case FloatKind::kFloat: fn(float{}); break;
    case FloatKind::kDouble: fn(double{}); break;
  }
}

inline unsigned grid_size(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 32 ? 65535 * 32 : blocks));
}

}  // namespace ppt::cuda
