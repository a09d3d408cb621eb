// CPU EWA projection of Gaussians into every camera of their scene, forward and backward.
// The backward is parallel over Gaussians and loops over the cameras, so each gradient row has a
// single writer and a fixed summation order (deterministic without atomics).
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include "ppt/cpu_parallel.h"
#include "ppt/gaussian.h"
#include "raster/raster_checks.h"

namespace ppt {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_gaussians_cpu(
    const at::Tensor& means_in, const at::Tensor& quats_in, const at::Tensor& scales_in,
    const at::Tensor& viewmats_in, const at::Tensor& Ks_in, int64_t width, int64_t height,
    double near_plane, double far_plane, double eps2d) {
  check_project_args(means_in, quats_in, scales_in, viewmats_in, Ks_in, width, height, near_plane,
                     far_plane, eps2d);
  const int64_t batches = means_in.size(0), n = means_in.size(1), cams = viewmats_in.size(1);
  const at::Tensor means = means_in.contiguous(), quats = quats_in.contiguous();
  const at::Tensor scales = scales_in.contiguous(), viewmats = viewmats_in.contiguous(), Ks = Ks_in.contiguous();
  at::Tensor radii = at::zeros({batches, cams, n}, means.options().dtype(at::kInt));
  at::Tensor means2d = at::zeros({batches, cams, n, 2}, means.options());
  at::Tensor depths = at::zeros({batches, cams, n}, means.options());
  at::Tensor conics = at::zeros({batches, cams, n, 3}, means.options());
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_gaussians_cpu", [&] {
    const scalar_t* mp = means.const_data_ptr<scalar_t>();
    const scalar_t* qp = quats.const_data_ptr<scalar_t>();
    const scalar_t* sp = scales.const_data_ptr<scalar_t>();
    const scalar_t* vp = viewmats.const_data_ptr<scalar_t>();
    const scalar_t* kp = Ks.const_data_ptr<scalar_t>();
    int32_t* rp = radii.data_ptr<int32_t>();
    scalar_t* m2p = means2d.data_ptr<scalar_t>();
    scalar_t* dp = depths.data_ptr<scalar_t>();
    scalar_t* cp = conics.data_ptr<scalar_t>();
    parallel_for(0, batches * cams * n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t g = idx % n, image = idx / n, b = image / cams;
        const auto cam = PinholeCamera<scalar_t>::load(vp + image * 16, kp + image * 9, width, height);
        const int64_t row = b * n + g;
        const auto p = project_gaussian<scalar_t>(mp + row * 3, qp + row * 4, sp + row * 3, cam, width, height,
                                                  near_plane, far_plane, eps2d);
        dp[idx] = p.depth;
        if (!p.visible) continue;
        rp[idx] = p.radius;
        m2p[idx * 2] = p.mean2d[0];
        m2p[idx * 2 + 1] = p.mean2d[1];
        for (int i = 0; i < 3; ++i) cp[idx * 3 + i] = p.conic[i];
      }
    });
  });
  return {means2d, depths, conics, radii};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_gaussians_backward_cpu(
    const at::Tensor& grad_means2d_in, const at::Tensor& grad_depths_in, const at::Tensor& grad_conics_in,
    const at::Tensor& means_in, const at::Tensor& quats_in, const at::Tensor& scales_in,
    const at::Tensor& viewmats_in, const at::Tensor& Ks_in, const at::Tensor& radii_in, int64_t width,
    int64_t height, double near_plane, double far_plane, double eps2d) {
  check_project_backward_args(grad_means2d_in, grad_depths_in, grad_conics_in, means_in, radii_in, viewmats_in);
  const int64_t batches = means_in.size(0), n = means_in.size(1), cams = viewmats_in.size(1);
  const at::Tensor means = means_in.contiguous(), quats = quats_in.contiguous();
  const at::Tensor scales = scales_in.contiguous(), viewmats = viewmats_in.contiguous(), Ks = Ks_in.contiguous();
  const at::Tensor g_m2 = grad_means2d_in.contiguous(), g_d = grad_depths_in.contiguous();
  const at::Tensor g_c = grad_conics_in.contiguous(), radii = radii_in.contiguous();
  at::Tensor grad_means = at::zeros_like(means), grad_quats = at::zeros_like(quats);
  at::Tensor grad_scales = at::zeros_like(scales);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_gaussians_backward_cpu", [&] {
    const scalar_t* mp = means.const_data_ptr<scalar_t>();
    const scalar_t* qp = quats.const_data_ptr<scalar_t>();
    const scalar_t* sp = scales.const_data_ptr<scalar_t>();
    const scalar_t* vp = viewmats.const_data_ptr<scalar_t>();
    const scalar_t* kp = Ks.const_data_ptr<scalar_t>();
    const int32_t* rp = radii.const_data_ptr<int32_t>();
    const scalar_t* gm2 = g_m2.const_data_ptr<scalar_t>();
    const scalar_t* gd = g_d.const_data_ptr<scalar_t>();
    const scalar_t* gc = g_c.const_data_ptr<scalar_t>();
    scalar_t* gmp = grad_means.data_ptr<scalar_t>();
    scalar_t* gqp = grad_quats.data_ptr<scalar_t>();
    scalar_t* gsp = grad_scales.data_ptr<scalar_t>();
    parallel_for(0, batches * n, 64, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / n, g = row % n;
        for (int64_t c = 0; c < cams; ++c) {
          const int64_t image = b * cams + c, idx = image * n + g;
          if (rp[idx] <= 0) continue;
          const auto cam = PinholeCamera<scalar_t>::load(vp + image * 16, kp + image * 9, width, height);
          const auto p = project_gaussian<scalar_t>(mp + row * 3, qp + row * 4, sp + row * 3, cam, width,
                                                    height, near_plane, far_plane, eps2d);
          project_gaussian_backward<scalar_t>(p, sp + row * 3, cam, gm2 + idx * 2, gc + idx * 3, gd[idx],
                                              gmp + row * 3, gqp + row * 4, gsp + row * 3);
        }
      }
    });
  });
  return {grad_means, grad_quats, grad_scales};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("project_gaussians", cpu_op<&project_gaussians_cpu>);
  m.impl("project_gaussians_backward", cpu_op<&project_gaussians_backward_cpu>);
}

}  // namespace ppt
