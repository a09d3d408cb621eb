#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "point/point_checks.h"
#include "point/point_cuda.h"
#include "ppt/cuda_glue.h"

namespace ppt {
namespace {

at::Tensor fps_cuda(const at::Tensor& xyz_in, int64_t num_samples, int64_t start_index) {
  check_fps_args(xyz_in, num_samples, start_index);
  const c10::cuda::CUDAGuard guard(xyz_in.device());
  const int64_t batches = xyz_in.size(0), n = xyz_in.size(1);
  at::Tensor out = at::empty({batches, num_samples}, xyz_in.options().dtype(at::kLong));
  if (batches == 0 || num_samples == 0) return out;
  const at::Tensor xyz = xyz_in.contiguous();
  at::Tensor min_dist = at::empty({batches, n}, xyz.options().dtype(acc_dtype(xyz.scalar_type())));
  cuda::farthest_point_sample(float_kind(xyz.scalar_type()), xyz.const_data_ptr(), batches, n,
                              num_samples, start_index, min_dist.data_ptr(), out.data_ptr<int64_t>(),
                              current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) { m.impl("farthest_point_sample", &fps_cuda); }

}  // namespace ppt
