// CUDA glue of the spherical-harmonics colours: validation (shared with CPU), allocation, launch.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "raster/raster_checks.h"
#include "raster/raster_cuda.h"

namespace ppt {
namespace {

at::Tensor spherical_harmonics_cuda(const at::Tensor& sh_in, const at::Tensor& means_in,
                                    const at::Tensor& viewmats_in, int64_t degree) {
  check_sh_args(sh_in, means_in, viewmats_in, degree);
  const c10::cuda::CUDAGuard guard(sh_in.device());
  const int64_t batches = sh_in.size(0), n = sh_in.size(1), k = sh_in.size(2), cams = viewmats_in.size(1);
  const at::Tensor sh = sh_in.contiguous(), means = means_in.contiguous(), viewmats = viewmats_in.contiguous();
  at::Tensor colors = at::empty({batches, cams, n, 3}, sh.options());
  raster_cuda::sh_forward(float_kind(sh.scalar_type()), static_cast<int>(degree), batches, cams, n, k, sh.const_data_ptr(),
                          means.const_data_ptr(), viewmats.const_data_ptr(), colors.data_ptr(),
                          c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return colors;
}

std::tuple<at::Tensor, at::Tensor> spherical_harmonics_backward_cuda(const at::Tensor& grad_in,
                                                                     const at::Tensor& sh_in,
                                                                     const at::Tensor& means_in,
                                                                     const at::Tensor& viewmats_in,
                                                                     int64_t degree) {
  check_sh_args(sh_in, means_in, viewmats_in, degree);
  check_sh_backward_args(grad_in, sh_in, viewmats_in);
  const c10::cuda::CUDAGuard guard(sh_in.device());
  const int64_t batches = sh_in.size(0), n = sh_in.size(1), k = sh_in.size(2), cams = viewmats_in.size(1);
  const at::Tensor sh = sh_in.contiguous(), means = means_in.contiguous(), viewmats = viewmats_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor grad_sh = at::zeros_like(sh), grad_means = at::zeros_like(means);
  raster_cuda::sh_backward(float_kind(sh.scalar_type()), static_cast<int>(degree), batches, cams, n, k, sh.const_data_ptr(),
                           means.const_data_ptr(), viewmats.const_data_ptr(), grad.const_data_ptr(),
                           grad_sh.data_ptr(), grad_means.data_ptr(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_sh, grad_means};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("spherical_harmonics", &spherical_harmonics_cuda);
  m.impl("spherical_harmonics_backward", &spherical_harmonics_backward_cuda);
}

}  // namespace ppt
