// CPU view-dependent colour from real spherical harmonics (Inria convention: + 0.5, clamp at 0),
// forward and backward. Parallel over Gaussians with the cameras looped inside, so gradients of
// the coefficients and means are summed over cameras in a fixed order by a single writer.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include "ppt/cpu_parallel.h"
#include "ppt/gaussian.h"
#include "raster/raster_checks.h"

namespace ppt {
namespace {

at::Tensor spherical_harmonics_cpu(const at::Tensor& sh_in, const at::Tensor& means_in,
                                   const at::Tensor& viewmats_in, int64_t degree) {
  check_sh_args(sh_in, means_in, viewmats_in, degree);
  const int64_t batches = sh_in.size(0), n = sh_in.size(1), k = sh_in.size(2), cams = viewmats_in.size(1);
  const at::Tensor sh = sh_in.contiguous(), means = means_in.contiguous(), viewmats = viewmats_in.contiguous();
  at::Tensor colors = at::empty({batches, cams, n, 3}, sh.options());
  AT_DISPATCH_FLOATING_TYPES(sh.scalar_type(), "spherical_harmonics_cpu", [&] {
    const scalar_t* shp = sh.const_data_ptr<scalar_t>();
    const scalar_t* mp = means.const_data_ptr<scalar_t>();
    const scalar_t* vp = viewmats.const_data_ptr<scalar_t>();
    scalar_t* out = colors.data_ptr<scalar_t>();
    parallel_for(0, batches * cams * n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t g = idx % n, image = idx / n, row = (image / cams) * n + g;
        sh_color_forward<scalar_t>(static_cast<int>(degree), shp + row * k * 3, mp + row * 3, vp + image * 16,
                                   out + idx * 3);
      }
    });
  });
  return colors;
}

std::tuple<at::Tensor, at::Tensor> spherical_harmonics_backward_cpu(const at::Tensor& grad_in,
                                                                    const at::Tensor& sh_in,
                                                                    const at::Tensor& means_in,
                                                                    const at::Tensor& viewmats_in,
                                                                    int64_t degree) {
  check_sh_args(sh_in, means_in, viewmats_in, degree);
  check_sh_backward_args(grad_in, sh_in, viewmats_in);
  const int64_t batches = sh_in.size(0), n = sh_in.size(1), k = sh_in.size(2), cams = viewmats_in.size(1);
  const at::Tensor sh = sh_in.contiguous(), means = means_in.contiguous(), viewmats = viewmats_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor grad_sh = at::zeros_like(sh), grad_means = at::zeros_like(means);
  AT_DISPATCH_FLOATING_TYPES(sh.scalar_type(), "spherical_harmonics_backward_cpu", [&] {
    const scalar_t* shp = sh.const_data_ptr<scalar_t>();
    const scalar_t* mp = means.const_data_ptr<scalar_t>();
    const scalar_t* vp = viewmats.const_data_ptr<scalar_t>();
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    scalar_t* gsh = grad_sh.data_ptr<scalar_t>();
    scalar_t* gm = grad_means.data_ptr<scalar_t>();
    parallel_for(0, batches * n, 64, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / n, g = row % n;
        for (int64_t c = 0; c < cams; ++c) {
          const int64_t image = b * cams + c;
          sh_color_backward<scalar_t>(static_cast<int>(degree), shp + row * k * 3, mp + row * 3,
                                      vp + image * 16, gp + (image * n + g) * 3, gsh + row * k * 3,
                                      gm + row * 3);
        }
      }
    });
  });
  return {grad_sh, grad_means};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("spherical_harmonics", cpu_op<&spherical_harmonics_cpu>);
  m.impl("spherical_harmonics_backward", cpu_op<&spherical_harmonics_backward_cpu>);
}

}  // namespace ppt
