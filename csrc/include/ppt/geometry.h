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

// Bounded k-best list: `count` entries sorted by (distance, index). Adds (d, j), which must beat
// the k-th entry when the list is full, and returns the new count. Candidates arrive in
// increasing index order, so (d, j) goes after every entry of equal distance.
template <typename T>
PPT_HOST_DEVICE int64_t insert_sorted(T* dist, int64_t* index, int64_t count, int64_t k, T d, int64_t j) {
  int64_t p = count < k ? count++ : k - 1;
  while (p > 0 && dist[p - 1] > d) {
    dist[p] = dist[p - 1];
    index[p] = index[p - 1];
    --p;
  }
  dist[p] = d;
  index[p] = j;
  return count;
}

}  // namespace ppt
