// Point-distance math used identically by the CPU kernels, the CUDA kernels and (by construction)
// the PyTorch references: each product and sum is rounded separately, never fused, so the three
// agree bit for bit and tie-breaking on equal distances is reproducible across devices.
#pragma once

#include "ppt/common.h"

namespace ppt {

#if defined(__CUDA_ARCH__)
PPT_HOST_DEVICE float exact_mul(float a, float b) { return __fmul_rn(a, b); }
PPT_HOST_DEVICE float exact_add(float a, float b) { return __fadd_rn(a, b); }
PPT_HOST_DEVICE double exact_mul(double a, double b) { return __dmul_rn(a, b); }
PPT_HOST_DEVICE double exact_add(double a, double b) { return __dadd_rn(a, b); }
#else
// Host builds use -ffp-contract=off, so plain operators are already unfused.
template <typename T>
PPT_HOST_DEVICE T exact_mul(T a, T b) { return a * b; }
template <typename T>
PPT_HOST_DEVICE T exact_add(T a, T b) { return a + b; }
#endif

// ((dx*dx + dy*dy) + dz*dz), evaluated in T without contraction.
template <typename T>
PPT_HOST_DEVICE T squared_distance3(T ax, T ay, T az, T bx, T by, T bz) {
  const T dx = ax - bx;
  const T dy = ay - by;
  const T dz = az - bz;
  return exact_add(exact_add(exact_mul(dx, dx), exact_mul(dy, dy)), exact_mul(dz, dz));
}

// Strict "a comes before b" for (distance, index) pairs: smaller distance first, ties to the
// lower index. Used by kNN selection and, with the order flipped, by FPS's argmax.
template <typename T>
PPT_HOST_DEVICE bool distance_index_less(T da, int64_t ia, T db, int64_t ib) {
  return da < db || (da == db && ia < ib);
}

}  // namespace ppt
