#include "point/voxelize_plan.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace ppt {

void fail_voxelize_invalid_point(int64_t index, double x, double y, double z, double voxel_size) {
  TORCH_CHECK(false, "voxelize: coord[", index, "] = (", x, ", ", y, ", ", z,
              ") is not finite or too large for voxel_size=", voxel_size,
              " (coord / voxel_size must be finite and within +-4e18)");
}

int64_t voxelize_num_batches(int64_t min_batch, int64_t max_batch) {
  TORCH_CHECK(min_batch >= 0, "voxelize: batch ids must be >= 0, got ", min_batch);
  TORCH_CHECK(max_batch < kMaxGridExtent, "voxelize: batch ids must be < 2^31-1, got ", max_batch);
  return max_batch + 1;
}

VoxelizePlan plan_voxelize(int64_t num_batches, const int64_t* lower, const int64_t* upper,
                           double voxel_size) {
  int64_t extent[3] = {1, 1, 1};
  for (int64_t b = 0; b < num_batches; ++b) {
    if (upper[3 * b] < lower[3 * b]) continue;  // scene without points
    for (int a = 0; a < 3; ++a) {
      // Unsigned difference: the span of two int64 grid indices can exceed INT64_MAX.
      const uint64_t span = static_cast<uint64_t>(upper[3 * b + a]) - static_cast<uint64_t>(lower[3 * b + a]);
      TORCH_CHECK(span < static_cast<uint64_t>(kMaxGridExtent), "voxelize: a scene spans more than ",
                  kMaxGridExtent, " voxels along axis ", a, " at voxel_size=", voxel_size,
                  ", more than the int32 voxel_coords can hold; increase voxel_size");
      extent[a] = std::max<int64_t>(extent[a], static_cast<int64_t>(span) + 1);
    }
  }
  const unsigned __int128 keys = static_cast<unsigned __int128>(num_batches) *
                                 static_cast<unsigned __int128>(extent[0]) *
                                 static_cast<unsigned __int128>(extent[1]) *
                                 static_cast<unsigned __int128>(extent[2]);
  TORCH_CHECK(keys <= static_cast<unsigned __int128>(INT64_MAX),
              "voxelize: the voxel grid (", num_batches, " scenes of up to ", extent[0], " x ",
              extent[1], " x ", extent[2], " voxels at voxel_size=", voxel_size,
              ") does not fit the 63-bit voxel key packing; increase voxel_size or split the batch");
  int bits = 1;
  while (bits < 63 && (static_cast<unsigned __int128>(1) << bits) < keys) ++bits;
  return VoxelizePlan{VoxelPacking{extent[0], extent[1], extent[2]}, bits};
}

}  // namespace ppt
