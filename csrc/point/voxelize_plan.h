// Host-side planning shared by the CPU and CUDA voxelize: validates batch ids and per-scene grid
// extents and chooses the (b, x, y, z) key packing.
#pragma once

#include <cstdint>

#include "ppt/voxel.h"

namespace ppt {

// Reported when coord[index] is not finite or coord / voxel_size does not fit an int64.
[[noreturn]] void fail_voxelize_invalid_point(int64_t index, double x, double y, double z,
                                              double voxel_size);

// min_batch/max_batch: range of the batch ids (0 and 0 when batch is None).
// Returns the number of scenes B = max_batch + 1 after checking the ids are usable.
int64_t voxelize_num_batches(int64_t min_batch, int64_t max_batch);

struct VoxelizePlan {
  VoxelPacking packing;
  int key_bits;  // keys lie in [0, 2^key_bits): lets radix sorts skip the high bits
};

// lower/upper: per-scene minimum and maximum grid index, (num_batches, 3) row-major on the host;
// scenes without points have lower > upper. Checks that local coordinates fit int32 and that the
// packed keys fit 63 bits.
VoxelizePlan plan_voxelize(int64_t num_batches, const int64_t* lower, const int64_t* upper,
                           double voxel_size);

}  // namespace ppt
