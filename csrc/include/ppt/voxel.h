// Voxel-grid math shared by the CPU and CUDA voxelize kernels.
#pragma once

#include <cmath>

#include "ppt/common.h"

namespace ppt {

// |coord / voxel_size| beyond this cannot be represented as an int64 grid index safely.
constexpr double kMaxAbsGridIndex = 4.0e18;
// Per-scene extents must fit the int32 voxel_coords output.
constexpr int64_t kMaxGridExtent = 2147483647LL;

// World-aligned grid index floor(c / voxel_size), computed in float64 like Pointcept's GridSample
// (numpy promotes float32 coordinates divided by a float64 grid size). Returns false when the
// coordinate is not finite or the index does not fit an int64.
PPT_HOST_DEVICE bool grid_index(double c, double voxel_size, int64_t* out) {
  const double g = floor(c / voxel_size);
  if (!(g >= -kMaxAbsGridIndex && g <= kMaxAbsGridIndex)) return false;  // also rejects NaN
  *out = static_cast<int64_t>(g);
  return true;
}

// Row-major packing of (b, x, y, z) with extents (B, X, Y, Z): integer order of keys equals
// lexicographic order of (b, x, y, z). The host checks B*X*Y*Z < 2^63 before packing.
struct VoxelPacking {
  int64_t extent_x, extent_y, extent_z;

  PPT_HOST_DEVICE int64_t pack(int64_t b, int64_t x, int64_t y, int64_t z) const {
    return ((b * extent_x + x) * extent_y + y) * extent_z + z;
  }
  PPT_HOST_DEVICE void unpack(int64_t key, int32_t* bxyz) const {
    bxyz[3] = static_cast<int32_t>(key % extent_z);
    key /= extent_z;
    bxyz[2] = static_cast<int32_t>(key % extent_y);
    key /= extent_y;
    bxyz[1] = static_cast<int32_t>(key % extent_x);
    bxyz[0] = static_cast<int32_t>(key / extent_x);
  }
};

}  // namespace ppt
