#include "raster/raster_checks.h"

#include <ATen/ATen.h>

#include <cmath>

#include "ppt/gaussian.h"
#include "ppt/tensor_checks.h"

namespace ppt {
namespace {

// Rasterization kernels run in float32 or float64 only (half precision cannot hold the conic of a
// small splat or the transmittance product reliably).
void check_raster_dtype(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
              " must be float32 or float64, got ", t.scalar_type());
}

void check_shape(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef expected,
                 const char* layout) {
  TORCH_CHECK(t.sizes() == expected, op, ": ", name, " must have shape ", layout, " = ", expected,
              ", got ", shape_string(t));
}

void check_image_size(const char* op, int64_t width, int64_t height) {
  TORCH_CHECK(width > 0 && width <= kMaxImageSide && height > 0 && height <= kMaxImageSide, op,
              ": width and height must be in [1, ", kMaxImageSide, "], got width=", width,
              ", height=", height);
}

}  // namespace

void check_project_args(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                        const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height,
                        double near_plane, double far_plane, double eps2d) {
  constexpr const char* op = "project_gaussians";
  check_raster_dtype(op, "means", means);
  check_dim(op, "means", means, 3, "(B, N, 3)");
  check_last_dim(op, "means", means, 3, "(B, N, 3)");
  const int64_t b = means.size(0), n = means.size(1);
  check_dim(op, "viewmats", viewmats, 4, "(B, C, 4, 4)");
  const int64_t c = viewmats.size(1);
  check_shape(op, "quats", quats, {b, n, 4}, "(B, N, 4)");
  check_shape(op, "scales", scales, {b, n, 3}, "(B, N, 3)");
  check_shape(op, "viewmats", viewmats, {b, c, 4, 4}, "(B, C, 4, 4)");
  check_shape(op, "Ks", Ks, {b, c, 3, 3}, "(B, C, 3, 3)");
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor&>{"quats", quats},
                                {"scales", scales}, {"viewmats", viewmats}, {"Ks", Ks}}) {
    check_same_dtype(op, "means", means, name, t);
    check_same_device(op, "means", means, name, t);
  }
  check_image_size(op, width, height);
  TORCH_CHECK(std::isfinite(near_plane) && near_plane > 0 && far_plane > near_plane, op,
              ": near_plane must be positive and finite and far_plane > near_plane, got near_plane=",
              near_plane, ", far_plane=", far_plane);
  TORCH_CHECK(std::isfinite(eps2d) && eps2d >= 0, op, ": eps2d must be a finite number >= 0, got ", eps2d);
  // All value checks are gathered into one small tensor so a CUDA input costs a single sync.
  const auto all_finite = [](const at::Tensor& t) { return at::isfinite(t).all(); };
  at::Tensor flags = at::stack({all_finite(means), all_finite(scales), all_finite(quats),
                                (quats != 0).any(-1).all(), all_finite(viewmats), all_finite(Ks),
                                (Ks.select(-2, 0).select(-1, 0) > 0).all(),
                                (Ks.select(-2, 1).select(-1, 1) > 0).all()})
                          .cpu();
  const bool* ok = flags.const_data_ptr<bool>();
  TORCH_CHECK(ok[0], op, ": means contains NaN or Inf; Gaussian centres must be finite");
  TORCH_CHECK(ok[1], op, ": scales contains NaN or Inf; scales must be finite");
  TORCH_CHECK(ok[2], op, ": quats contains NaN or Inf");
  TORCH_CHECK(ok[3], op, ": quats contains an all-zero quaternion; rotations need a non-zero (w, x, y, z)");
  TORCH_CHECK(ok[4], op, ": viewmats contains NaN or Inf");
  TORCH_CHECK(ok[5] && ok[6] && ok[7], op,
              ": Ks must be finite with positive focal lengths fx = K[0, 0] and fy = K[1, 1]");
}

void check_project_backward_args(const at::Tensor& grad_means2d, const at::Tensor& grad_depths,
                                 const at::Tensor& grad_conics, const at::Tensor& means,
                                 const at::Tensor& radii, const at::Tensor& viewmats) {
  constexpr const char* op = "project_gaussians_backward";
  const int64_t b = means.size(0), n = means.size(1), c = viewmats.size(1);
  check_shape(op, "grad_means2d", grad_means2d, {b, c, n, 2}, "(B, C, N, 2)");
  check_shape(op, "grad_depths", grad_depths, {b, c, n}, "(B, C, N)");
  check_shape(op, "grad_conics", grad_conics, {b, c, n, 3}, "(B, C, N, 3)");
  check_shape(op, "radii", radii, {b, c, n}, "(B, C, N)");
  check_dtype(op, "radii", radii, at::kInt);
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor&>{"grad_means2d", grad_means2d},
                                {"grad_depths", grad_depths}, {"grad_conics", grad_conics}}) {
    check_same_dtype(op, "means", means, name, t);
    check_same_device(op, "means", means, name, t);
  }
  check_same_device(op, "means", means, "radii", radii);
}

void check_sh_args(const at::Tensor& sh, const at::Tensor& means, const at::Tensor& viewmats,
                   int64_t degree) {
  constexpr const char* op = "spherical_harmonics";
  check_raster_dtype(op, "sh", sh);
  TORCH_CHECK(degree >= 0 && degree <= kMaxShDegree, op, ": sh_degree must be in [0, ", kMaxShDegree,
              "], got ", degree);
  check_dim(op, "sh", sh, 4, "(B, N, K, 3)");
  check_last_dim(op, "sh", sh, 3, "(B, N, K, 3)");
  const int64_t needed = (degree + 1) * (degree + 1);
  TORCH_CHECK(sh.size(2) >= needed && sh.size(2) <= kMaxShCoeffs, op, ": sh_degree=", degree,
              " needs K >= ", needed, " (and at most ", kMaxShCoeffs, ") SH coefficients per colour, got K=",
              sh.size(2));
  const int64_t b = sh.size(0), n = sh.size(1);
  check_shape(op, "means", means, {b, n, 3}, "(B, N, 3)");
  check_dim(op, "viewmats", viewmats, 4, "(B, C, 4, 4)");
  check_shape(op, "viewmats", viewmats, {b, viewmats.size(1), 4, 4}, "(B, C, 4, 4)");
  check_same_dtype(op, "sh", sh, "means", means);
  check_same_dtype(op, "sh", sh, "viewmats", viewmats);
  check_same_device(op, "sh", sh, "means", means);
  check_same_device(op, "sh", sh, "viewmats", viewmats);
}

void check_sh_backward_args(const at::Tensor& grad_colors, const at::Tensor& sh,
                            const at::Tensor& viewmats) {
  constexpr const char* op = "spherical_harmonics_backward";
  check_shape(op, "grad_colors", grad_colors, {sh.size(0), viewmats.size(1), sh.size(1), 3},
              "(B, C, N, 3)");
  check_same_dtype(op, "grad_colors", grad_colors, "sh", sh);
  check_same_device(op, "grad_colors", grad_colors, "sh", sh);
}

int64_t check_bin_args(const at::Tensor& means2d, const at::Tensor& radii, const at::Tensor& depths,
                       int64_t width, int64_t height, int64_t tile_size) {
  constexpr const char* op = "bin_gaussians";
  check_raster_dtype(op, "means2d", means2d);
  check_dim(op, "means2d", means2d, 3, "(I, N, 2)");
  check_last_dim(op, "means2d", means2d, 2, "(I, N, 2)");
  const int64_t images = means2d.size(0), n = means2d.size(1);
  check_shape(op, "radii", radii, {images, n}, "(I, N)");
  check_dtype(op, "radii", radii, at::kInt);
  check_shape(op, "depths", depths, {images, n}, "(I, N)");
  check_same_dtype(op, "means2d", means2d, "depths", depths);
  check_same_device(op, "means2d", means2d, "radii", radii);
  check_same_device(op, "means2d", means2d, "depths", depths);
  check_image_size(op, width, height);
  TORCH_CHECK(tile_size >= 1 && tile_size <= 32, op, ": tile_size must be in [1, 32], got ", tile_size);
  const int64_t tiles = ((width + tile_size - 1) / tile_size) * ((height + tile_size - 1) / tile_size);
  // Sort keys pack (image, tile) into the upper 32 bits.
  TORCH_CHECK(images * tiles < (int64_t(1) << 31), op, ": ", images, " images of ", tiles,
              " tiles each are too many for the tile grid (image * tile must fit in 31 bits); "
              "use a larger tile_size or fewer images per call");
  return tiles;
}

void check_rasterize_args(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& colors,
                          const at::Tensor& opacities, int64_t width, int64_t height, int64_t tile_size,
                          double alpha_cap, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids) {
  constexpr const char* op = "rasterize_tiles";
  check_raster_dtype(op, "means2d", means2d);
  check_dim(op, "means2d", means2d, 3, "(I, N, 2)");
  check_last_dim(op, "means2d", means2d, 2, "(I, N, 2)");
  const int64_t images = means2d.size(0), n = means2d.size(1);
  check_shape(op, "conics", conics, {images, n, 3}, "(I, N, 3)");
  check_dim(op, "colors", colors, 3, "(I, N, D)");
  check_shape(op, "colors", colors, {images, n, colors.size(2)}, "(I, N, D)");
  TORCH_CHECK(colors.size(2) >= 1, op, ": colors must have at least one channel, got ", shape_string(colors));
  check_shape(op, "opacities", opacities, {images, n}, "(I, N)");
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor&>{"conics", conics},
                                {"colors", colors}, {"opacities", opacities}}) {
    check_same_dtype(op, "means2d", means2d, name, t);
    check_same_device(op, "means2d", means2d, name, t);
  }
  check_image_size(op, width, height);
  TORCH_CHECK(tile_size >= 1 && tile_size <= 32, op, ": tile_size must be in [1, 32], got ", tile_size);
  TORCH_CHECK(alpha_cap > 0 && alpha_cap < 1, op, ": alpha_cap must be in (0, 1), got ", alpha_cap);
  const int64_t tiles_x = (width + tile_size - 1) / tile_size, tiles_y = (height + tile_size - 1) / tile_size;
  check_shape(op, "tile_offsets", tile_offsets, {images, tiles_y, tiles_x}, "(I, tiles_y, tiles_x)");
  check_dtype(op, "tile_offsets", tile_offsets, at::kInt);
  check_dim(op, "flatten_ids", flatten_ids, 1, "(M,)");
  check_dtype(op, "flatten_ids", flatten_ids, at::kLong);
  check_same_device(op, "means2d", means2d, "tile_offsets", tile_offsets);
  check_same_device(op, "means2d", means2d, "flatten_ids", flatten_ids);
}

void check_opacity_values(const char* op, const at::Tensor& opacities) {
  if (opacities.numel() == 0) return;
  const auto [lowest, highest] = at::aminmax(opacities);  // NaN propagates into both
  const at::Tensor range = at::stack({lowest, highest}).to(at::kDouble).cpu();
  const double low = range.const_data_ptr<double>()[0], high = range.const_data_ptr<double>()[1];
  TORCH_CHECK(std::isfinite(low) && std::isfinite(high), op,
              ": opacities contains NaN or Inf; opacities must be finite, in [0, 1]");
  TORCH_CHECK(low >= 0 && high <= 1, op,
              ": opacities must be in [0, 1] (apply the sigmoid to logits first), got values in [", low, ", ",
              high, "]");
}

void check_rasterize_backward_args(const at::Tensor& grad_colors, const at::Tensor& grad_alphas,
                                   const at::Tensor& colors, const at::Tensor& render_alphas,
                                   const at::Tensor& last_ids, int64_t width, int64_t height) {
  constexpr const char* op = "rasterize_tiles_backward";
  const int64_t images = colors.size(0), channels = colors.size(2);
  check_shape(op, "grad_colors", grad_colors, {images, height, width, channels}, "(I, H, W, D)");
  check_shape(op, "grad_alphas", grad_alphas, {images, height, width, 1}, "(I, H, W, 1)");
  check_shape(op, "render_alphas", render_alphas, {images, height, width, 1}, "(I, H, W, 1)");
  check_shape(op, "last_ids", last_ids, {images, height, width}, "(I, H, W)");
  check_dtype(op, "last_ids", last_ids, at::kInt);
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor&>{"grad_colors", grad_colors},
                                {"grad_alphas", grad_alphas}, {"render_alphas", render_alphas}}) {
    check_same_dtype(op, "colors", colors, name, t);
    check_same_device(op, "colors", colors, name, t);
  }
  check_same_device(op, "colors", colors, "last_ids", last_ids);
}

}  // namespace ppt
