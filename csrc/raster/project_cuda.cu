// CUDA EWA projection, forward (thread per image x Gaussian) and backward (thread per Gaussian,
// looping over its scene's cameras: one writer per gradient row, no atomics).
#include "ppt/cuda_launch.cuh"
#include "ppt/gaussian.h"
#include "raster/raster_cuda.h"

namespace ppt {
namespace raster_cuda {
namespace {

template <typename T>
__global__ void project_forward_kernel(ProjectArgs a, const T* means, const T* quats, const T* scales,
                                       const T* viewmats, const T* Ks, T* means2d, T* depths, T* conics,
                                       int32_t* radii) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= a.batches * a.cams * a.n) return;
  const int64_t g = idx % a.n, image = idx / a.n, row = (image / a.cams) * a.n + g;
  const auto cam = PinholeCamera<T>::load(viewmats + image * 16, Ks + image * 9, a.width, a.height);
  const auto p = project_gaussian<T>(means + row * 3, quats + row * 4, scales + row * 3, cam, a.width, a.height,
                                     static_cast<T>(a.near_plane), static_cast<T>(a.far_plane),
                                     static_cast<T>(a.eps2d));
  depths[idx] = p.depth;
  radii[idx] = p.visible ? p.radius : 0;
  means2d[idx * 2] = p.visible ? p.mean2d[0] : T(0);
  means2d[idx * 2 + 1] = p.visible ? p.mean2d[1] : T(0);
  for (int i = 0; i < 3; ++i) conics[idx * 3 + i] = p.visible ? p.conic[i] : T(0);
}

template <typename T>
__global__ void project_backward_kernel(ProjectArgs a, const T* means, const T* quats, const T* scales,
                                        const T* viewmats, const T* Ks, const int32_t* radii,
                                        const T* grad_means2d, const T* grad_depths, const T* grad_conics,
                                        T* grad_means, T* grad_quats, T* grad_scales) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (row >= a.batches * a.n) return;
  const int64_t b = row / a.n, g = row % a.n;
  T v_mean[3] = {0, 0, 0}, v_quat[4] = {0, 0, 0, 0}, v_scale[3] = {0, 0, 0};
  for (int64_t c = 0; c < a.cams; ++c) {
    const int64_t image = b * a.cams + c, idx = image * a.n + g;
    if (radii[idx] <= 0) continue;
    const auto cam = PinholeCamera<T>::load(viewmats + image * 16, Ks + image * 9, a.width, a.height);
    const auto p = project_gaussian<T>(means + row * 3, quats + row * 4, scales + row * 3, cam, a.width,
                                       a.height, static_cast<T>(a.near_plane), static_cast<T>(a.far_plane),
                                       static_cast<T>(a.eps2d));
    project_gaussian_backward<T>(p, scales + row * 3, cam, grad_means2d + idx * 2, grad_conics + idx * 3,
                                 grad_depths[idx], v_mean, v_quat, v_scale);
  }
  for (int i = 0; i < 3; ++i) grad_means[row * 3 + i] = v_mean[i];
  for (int i = 0; i < 4; ++i) grad_quats[row * 4 + i] = v_quat[i];
  for (int i = 0; i < 3; ++i) grad_scales[row * 3 + i] = v_scale[i];
}

constexpr int kThreads = 256;

}  // namespace

void project_forward(FloatKind kind, const ProjectArgs& a, const void* means, const void* quats,
                     const void* scales, const void* viewmats, const void* Ks, void* means2d, void* depths,
                     void* conics, int32_t* radii, cudaStream_t stream) {
  const int64_t count = a.batches * a.cams * a.n;
  if (count == 0) return;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    PPT_LAUNCH(project_forward_kernel<T>, blocks_for(count, kThreads), kThreads, 0, stream)(
        a, static_cast<const T*>(means), static_cast<const T*>(quats), static_cast<const T*>(scales),
        static_cast<const T*>(viewmats), static_cast<const T*>(Ks), static_cast<T*>(means2d),
        static_cast<T*>(depths), static_cast<T*>(conics), radii);
  });
}

void project_backward(FloatKind kind, const ProjectArgs& a, const void* means, const void* quats,
                      const void* scales, const void* viewmats, const void* Ks, const int32_t* radii,
                      const void* grad_means2d, const void* grad_depths, const void* grad_conics,
                      void* grad_means, void* grad_quats, void* grad_scales, cudaStream_t stream) {
  const int64_t count = a.batches * a.n;
  if (count == 0) return;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    PPT_LAUNCH(project_backward_kernel<T>, blocks_for(count, kThreads), kThreads, 0, stream)(
        a, static_cast<const T*>(means), static_cast<const T*>(quats), static_cast<const T*>(scales),
        static_cast<const T*>(viewmats), static_cast<const T*>(Ks), radii, static_cast<const T*>(grad_means2d),
        static_cast<const T*>(grad_depths), static_cast<const T*>(grad_conics), static_cast<T*>(grad_means),
        static_cast<T*>(grad_quats), static_cast<T*>(grad_scales));
  });
}

}  // namespace raster_cuda
}  // namespace ppt
