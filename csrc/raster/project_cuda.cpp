// CUDA glue of the EWA projection: validation (shared with CPU), allocation, launch.
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "raster/raster_checks.h"
#include "raster/raster_cuda.h"

namespace ppt {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_gaussians_cuda(
    const at::Tensor& means_in, const at::Tensor& quats_in, const at::Tensor& scales_in,
    const at::Tensor& viewmats_in, const at::Tensor& Ks_in, int64_t width, int64_t height,
    double near_plane, double far_plane, double eps2d) {
  check_project_args(means_in, quats_in, scales_in, viewmats_in, Ks_in, width, height, near_plane,
                     far_plane, eps2d);
  const c10::cuda::CUDAGuard guard(means_in.device());
  const int64_t batches = means_in.size(0), n = means_in.size(1), cams = viewmats_in.size(1);
  const at::Tensor means = means_in.contiguous(), quats = quats_in.contiguous();
  const at::Tensor scales = scales_in.contiguous(), viewmats = viewmats_in.contiguous(), Ks = Ks_in.contiguous();
  at::Tensor means2d = at::zeros({batches, cams, n, 2}, means.options());
  at::Tensor depths = at::zeros({batches, cams, n}, means.options());
  at::Tensor conics = at::zeros({batches, cams, n, 3}, means.options());
  at::Tensor radii = at::zeros({batches, cams, n}, means.options().dtype(at::kInt));
  const raster_cuda::ProjectArgs args{batches, cams, n, width, height, near_plane, far_plane, eps2d};
  raster_cuda::project_forward(float_kind(means.scalar_type()), args, means.const_data_ptr(), quats.const_data_ptr(),
                               scales.const_data_ptr(), viewmats.const_data_ptr(), Ks.const_data_ptr(),
                               means2d.data_ptr(), depths.data_ptr(), conics.data_ptr(),
                               radii.data_ptr<int32_t>(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {means2d, depths, conics, radii};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_gaussians_backward_cuda(
    const at::Tensor& grad_means2d_in, const at::Tensor& grad_depths_in, const at::Tensor& grad_conics_in,
    const at::Tensor& means_in, const at::Tensor& quats_in, const at::Tensor& scales_in,
    const at::Tensor& viewmats_in, const at::Tensor& Ks_in, const at::Tensor& radii_in, int64_t width,
    int64_t height, double near_plane, double far_plane, double eps2d) {
  check_project_backward_args(grad_means2d_in, grad_depths_in, grad_conics_in, means_in, radii_in, viewmats_in);
  const c10::cuda::CUDAGuard guard(means_in.device());
  const int64_t batches = means_in.size(0), n = means_in.size(1), cams = viewmats_in.size(1);
  const at::Tensor means = means_in.contiguous(), quats = quats_in.contiguous();
  const at::Tensor scales = scales_in.contiguous(), viewmats = viewmats_in.contiguous(), Ks = Ks_in.contiguous();
  const at::Tensor g_m2 = grad_means2d_in.contiguous(), g_d = grad_depths_in.contiguous();
  const at::Tensor g_c = grad_conics_in.contiguous(), radii = radii_in.contiguous();
  at::Tensor grad_means = at::zeros_like(means), grad_quats = at::zeros_like(quats);
  at::Tensor grad_scales = at::zeros_like(scales);
  const raster_cuda::ProjectArgs args{batches, cams, n, width, height, near_plane, far_plane, eps2d};
  raster_cuda::project_backward(float_kind(means.scalar_type()), args, means.const_data_ptr(), quats.const_data_ptr(),
                                scales.const_data_ptr(), viewmats.const_data_ptr(), Ks.const_data_ptr(),
                                radii.const_data_ptr<int32_t>(), g_m2.const_data_ptr(), g_d.const_data_ptr(),
                                g_c.const_data_ptr(), grad_means.data_ptr(), grad_quats.data_ptr(),
                                grad_scales.data_ptr(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_means, grad_quats, grad_scales};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("project_gaussians", &project_gaussians_cuda);
  m.impl("project_gaussians_backward", &project_gaussians_backward_cuda);
}

}  // namespace ppt
