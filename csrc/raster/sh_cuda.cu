// CUDA spherical-harmonics colours, forward (thread per image x Gaussian) and backward (thread
// per Gaussian looping over its cameras: one writer per gradient row, no atomics).
#include "ppt/cuda_launch.cuh"
#include "ppt/gaussian.h"
#include "raster/raster_cuda.h"

namespace ppt {
namespace raster_cuda {
namespace {

template <typename T>
__global__ void sh_forward_kernel(int degree, int64_t batches, int64_t cams, int64_t n, int64_t coeffs,
                                  const T* sh, const T* means, const T* viewmats, T* colors) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= batches * cams * n) return;
  const int64_t g = idx % n, image = idx / n, row = (image / cams) * n + g;
  sh_color_forward<T>(degree, sh + row * coeffs * 3, means + row * 3, viewmats + image * 16, colors + idx * 3);
}

template <typename T>
__global__ void sh_backward_kernel(int degree, int64_t batches, int64_t cams, int64_t n, int64_t coeffs,
                                   const T* sh, const T* means, const T* viewmats, const T* grad_colors,
                                   T* grad_sh, T* grad_means) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (row >= batches * n) return;
  const int64_t b = row / n, g = row % n;
  for (int64_t c = 0; c < cams; ++c) {
    const int64_t image = b * cams + c;
    sh_color_backward<T>(degree, sh + row * coeffs * 3, means + row * 3, viewmats + image * 16,
                         grad_colors + (image * n + g) * 3, grad_sh + row * coeffs * 3, grad_means + row * 3);
  }
}

constexpr int kThreads = 256;

}  // namespace

void sh_forward(FloatKind kind, int degree, int64_t batches, int64_t cams, int64_t n, int64_t coeffs,
                const void* sh, const void* means, const void* viewmats, void* colors, cudaStream_t stream) {
  const int64_t count = batches * cams * n;
  if (count == 0) return;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    PPT_LAUNCH(sh_forward_kernel<T>, blocks_for(count, kThreads), kThreads, 0, stream)(
        degree, batches, cams, n, coeffs, static_cast<const T*>(sh), static_cast<const T*>(means),
        static_cast<const T*>(viewmats), static_cast<T*>(colors));
  });
}

void sh_backward(FloatKind kind, int degree, int64_t batches, int64_t cams, int64_t n, int64_t coeffs,
                 const void* sh, const void* means, const void* viewmats, const void* grad_colors,
                 void* grad_sh, void* grad_means, cudaStream_t stream) {
  const int64_t count = batches * n;
  if (count == 0) return;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    PPT_LAUNCH(sh_backward_kernel<T>, blocks_for(count, kThreads), kThreads, 0, stream)(
        degree, batches, cams, n, coeffs, static_cast<const T*>(sh), static_cast<const T*>(means),
        static_cast<const T*>(viewmats), static_cast<const T*>(grad_colors), static_cast<T*>(grad_sh),
        static_cast<T*>(grad_means));
  });
}

}  // namespace raster_cuda
}  // namespace ppt
