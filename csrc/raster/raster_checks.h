// Argument validation of the Gaussian rasterization ops, shared by the CPU and CUDA
// implementations so both reject bad input with the same messages.
#pragma once

#include <ATen/core/Tensor.h>

#include "ppt/tensor_checks.h"

namespace ppt {

// Largest image side: tile and pixel indices are 32-bit in the kernels and sort keys.
constexpr int64_t kMaxImageSide = 1 << 15;

void check_project_args(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                        const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height,
                        double near_plane, double far_plane, double eps2d);
void check_project_backward_args(const at::Tensor& grad_means2d, const at::Tensor& grad_depths,
                                 const at::Tensor& grad_conics, const at::Tensor& means,
                                 const at::Tensor& radii, const at::Tensor& viewmats);
void check_sh_args(const at::Tensor& sh, const at::Tensor& means, const at::Tensor& viewmats,
                   int64_t degree);
void check_sh_backward_args(const at::Tensor& grad_colors, const at::Tensor& sh,
                            const at::Tensor& viewmats);
// Returns the number of tiles per image.
int64_t check_bin_args(const at::Tensor& means2d, const at::Tensor& radii, const at::Tensor& depths,
                       int64_t width, int64_t height, int64_t tile_size);
void check_rasterize_args(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                          const at::Tensor& opacities, int64_t width, int64_t height, int64_t tile_size,
                          double alpha_cap, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids);
// Value check of the forward only (one host sync); the backward receives what the forward accepted.
void check_opacity_values(const char* op, const at::Tensor& opacities);
void check_rasterize_backward_args(const at::Tensor& grad_colors, const at::Tensor& grad_alphas,
                                   const at::Tensor& colors, const at::Tensor& render_alphas,
                                   const at::Tensor& last_ids, int64_t width, int64_t height);

}  // namespace ppt
