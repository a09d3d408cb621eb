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

VoxelizePlan plan_voxelize(int64_t num_batches, int64_t extent_x, int64_t extent_y,
                           int64_t extent_z, double voxel_size) {
  const int64_t largest = std::max(extent_x, std::max(extent_y, extent_z));
  TORCH_CHECK(largest <= kMaxGridExtent, "voxelize: a scene spans ", largest,
              " voxels along one axis at voxel_size=", voxel_size,
              ", more than the int32 voxel_coords can hold (2^31-1); increase voxel_size");
  const unsigned __int128 keys = static_cast<unsigned __int128>(num_batches) *
                                 static_cast<unsigned __int128>(extent_x) *
                                 static_cast<unsigned __int128>(extent_y) *
                                 static_cast<unsigned __int128>(extent_z);
  TORCH_CHECK(keys <= static_cast<unsigned __int128>(INT64_MAX),
              "voxelize: the voxel grid (", num_batches, " scenes of up to ", extent_x, " x ",
              extent_y, " x ", extent_z, " voxels at voxel_size=", voxel_size,
              ") does not fit the 63-bit voxel key packing; increase voxel_size or split the batch");
  int bits = 1;
  while (bits < 63 && (static_cast<unsigned __int128>(1) << bits) < keys) ++bits;
  return VoxelizePlan{VoxelPacking{extent_x, extent_y, extent_z}, bits};
}

}  // namespace ppt
