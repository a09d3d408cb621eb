#include <ATen/ops/aminmax.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <limits>

#include "point/point_checks.h"
#include "point/point_cuda.h"
#include "point/voxelize_plan.h"
#include "ppt/cuda_glue.h"

namespace ppt {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> voxelize_cuda(const at::Tensor& coord_in,
                                                            double voxel_size,
                                                            const std::optional<at::Tensor>& batch_in) {
  check_voxelize_args(coord_in, voxel_size, batch_in);
  const c10::cuda::CUDAGuard guard(coord_in.device());
  const int64_t n = coord_in.size(0);
  const auto long_opts = coord_in.options().dtype(at::kLong);
  if (n == 0) {
    return {at::empty({0, 4}, coord_in.options().dtype(at::kInt)), at::empty({0}, long_opts),
            at::empty({0}, long_opts)};
  }
  const cudaStream_t stream = current_stream();
  const at::Tensor coord = coord_in.contiguous();
  at::Tensor grid = at::empty({n, 3}, long_opts);
  at::Tensor first_invalid = at::full({1}, n, long_opts);
  cuda::voxelize_grid(float_kind(coord.scalar_type()), coord.const_data_ptr(), n, voxel_size,
                      grid.data_ptr<int64_t>(),
                      reinterpret_cast<unsigned long long*>(first_invalid.data_ptr<int64_t>()), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t invalid = first_invalid.item<int64_t>();
  if (invalid < n) {
    const at::Tensor bad = coord[invalid].to(at::kCPU, at::kDouble);
    fail_voxelize_invalid_point(invalid, bad[0].item<double>(), bad[1].item<double>(),
                                bad[2].item<double>(), voxel_size);
  }

  const at::Tensor batch = batch_in.has_value() ? batch_in->contiguous() : at::Tensor();
  int64_t num_batches = 1;
  if (batch.defined()) {
    const auto [lo, hi] = at::aminmax(batch);
    num_batches = voxelize_num_batches(lo.item<int64_t>(), hi.item<int64_t>());
  }
  const int64_t* batch_ptr = batch.defined() ? batch.const_data_ptr<int64_t>() : nullptr;
  at::Tensor lower = at::full({num_batches, 3}, std::numeric_limits<int64_t>::max(), long_opts);
  at::Tensor upper = at::full({num_batches, 3}, std::numeric_limits<int64_t>::min(), long_opts);
  cuda::voxelize_bounds(grid.const_data_ptr<int64_t>(), batch_ptr, n, lower.data_ptr<int64_t>(),
                        upper.data_ptr<int64_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor lower_host = lower.cpu(), upper_host = upper.cpu();
  const VoxelizePlan plan = plan_voxelize(num_batches, lower_host.const_data_ptr<int64_t>(),
                                          upper_host.const_data_ptr<int64_t>(), voxel_size);

  const size_t temp_bytes = cuda::voxelize_temp_bytes(n, plan.key_bits);
  at::Tensor temp = at::empty({static_cast<int64_t>(temp_bytes)}, coord.options().dtype(at::kByte));
  at::Tensor keys = at::empty({2, n}, long_opts);
  at::Tensor order = at::empty({2, n}, long_opts);
  at::Tensor segment = at::empty({n}, long_opts);
  at::Tensor inverse = at::empty({n}, long_opts);
  at::Tensor unique_keys = at::empty({n}, long_opts);
  at::Tensor counts = at::zeros({n}, long_opts);
  at::Tensor num_unique = at::empty({1}, long_opts);
  auto* keys_ptr = reinterpret_cast<uint64_t*>(keys.data_ptr<int64_t>());
  cuda::voxelize_unique(grid.const_data_ptr<int64_t>(), batch_ptr, lower.const_data_ptr<int64_t>(), n,
                        plan.packing, plan.key_bits, keys_ptr, keys_ptr + n, order.data_ptr<int64_t>(),
                        order.data_ptr<int64_t>() + n, segment.data_ptr<int64_t>(), temp.data_ptr(),
                        temp_bytes, inverse.data_ptr<int64_t>(), unique_keys.data_ptr<int64_t>(),
                        counts.data_ptr<int64_t>(), num_unique.data_ptr<int64_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t m = num_unique.item<int64_t>();
  at::Tensor voxel_coords = at::empty({m, 4}, coord.options().dtype(at::kInt));
  cuda::voxelize_decode(unique_keys.const_data_ptr<int64_t>(), m, plan.packing,
                        voxel_coords.data_ptr<int32_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {voxel_coords, inverse, counts.narrow(0, 0, m).clone()};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) { m.impl("voxelize", &voxelize_cuda); }

}  // namespace ppt
