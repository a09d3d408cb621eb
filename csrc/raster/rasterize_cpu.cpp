// CPU tile rasterizer: front-to-back alpha compositing of the depth-sorted Gaussians of each tile,
// forward (parallel over tiles) and backward (parallel over images; each image's gradient rows
// have one writer and a fixed order, so the CPU backward is always deterministic).
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ppt/cpu_parallel.h"
#include "ppt/gaussian.h"
#include "raster/raster_checks.h"

namespace ppt {
namespace {

// Geometry of the tile grid and the [begin, end) range of sorted entries of one tile.
struct TileGrid {
  int64_t width, height, tile_size, tiles_x, tiles_y, tiles, total;
  const int32_t* offsets;
  TileGrid(int64_t w, int64_t h, int64_t ts, const at::Tensor& tile_offsets, int64_t entries)
      : width(w), height(h), tile_size(ts), tiles_x((w + ts - 1) / ts), tiles_y((h + ts - 1) / ts),
        tiles(tiles_x * tiles_y), total(entries), offsets(tile_offsets.const_data_ptr<int32_t>()) {}
  int64_t begin(int64_t image_tile) const { return offsets[image_tile]; }
  int64_t end(int64_t image_tile, int64_t num_image_tiles) const {
    return image_tile + 1 < num_image_tiles ? offsets[image_tile + 1] : total;
  }
};

// The Gaussians of one tile copied into contiguous arrays (the tile's pixels read them 256 times).
// skip_above[j] bounds the exponent beyond which alpha < 1/255 for sure, so most far pixels skip
// the exp; pairs under the bound still take the exact test of splat_alpha.
template <typename scalar_t>
struct TileSplats {
  std::vector<int64_t> id;
  std::vector<scalar_t> xy, conic, opacity, skip_above, color;

  void gather(int64_t first, int64_t last, const int64_t* ids, const scalar_t* means2d, const scalar_t* conics,
              const scalar_t* opacities, const scalar_t* colors, int64_t channels) {
    const int64_t count = last - first;
    id.resize(count);
    xy.resize(2 * count);
    conic.resize(3 * count);
    opacity.resize(count);
    skip_above.resize(count);
    color.resize(channels * count);
    for (int64_t j = 0; j < count; ++j) {
      const int64_t g = ids[first + j];
      id[j] = g;
      xy[2 * j] = means2d[2 * g];
      xy[2 * j + 1] = means2d[2 * g + 1];
      for (int i = 0; i < 3; ++i) conic[3 * j + i] = conics[3 * g + i];
      opacity[j] = opacities[g];
      // alpha >= 1/255 needs exponent <= log(255 opacity); the margin absorbs rounding.
      skip_above[j] = std::log(static_cast<scalar_t>(1.0 / kMinAlpha) * opacities[g]) + scalar_t(1e-3);
      for (int64_t c = 0; c < channels; ++c) color[j * channels + c] = colors[g * channels + c];
    }
  }
  // splat_alpha with the cheap rejection first.
  bool alpha_at(int64_t j, scalar_t dx, scalar_t dy, scalar_t alpha_cap, scalar_t* alpha, scalar_t* falloff) const {
    if (gaussian_exponent(&conic[3 * j], dx, dy) > skip_above[j]) return false;
    return splat_alpha(&conic[3 * j], opacity[j], dx, dy, alpha_cap, alpha, falloff);
  }
};

template <typename scalar_t>
void rasterize_forward_kernel(const TileGrid& grid, int64_t images, int64_t n, int64_t channels,
                              const scalar_t* means2d, const scalar_t* conics, const scalar_t* colors,
                              const scalar_t* opacities, scalar_t alpha_cap, const int64_t* ids,
                              scalar_t* out_colors, scalar_t* out_alphas, int32_t* last_ids) {
  const int64_t num_image_tiles = images * grid.tiles;
  parallel_for(0, num_image_tiles, 1, [&](int64_t begin_tile, int64_t end_tile) {
    std::vector<scalar_t> acc(channels);
    TileSplats<scalar_t> splats;
    for (int64_t t = begin_tile; t < end_tile; ++t) {
      const int64_t image = t / grid.tiles, tile = t % grid.tiles;
      const int64_t px0 = (tile % grid.tiles_x) * grid.tile_size, py0 = (tile / grid.tiles_x) * grid.tile_size;
      const int64_t first = grid.begin(t), count = grid.end(t, num_image_tiles) - first;
      splats.gather(first, first + count, ids, means2d, conics, opacities, colors, channels);
      for (int64_t py = py0; py < std::min(py0 + grid.tile_size, grid.height); ++py) {
        for (int64_t px = px0; px < std::min(px0 + grid.tile_size, grid.width); ++px) {
          const scalar_t cx = static_cast<scalar_t>(px) + scalar_t(0.5);
          const scalar_t cy = static_cast<scalar_t>(py) + scalar_t(0.5);
          std::fill(acc.begin(), acc.end(), scalar_t(0));
          scalar_t transmittance = 1;
          int32_t processed = 0;
          for (int64_t j = 0; j < count; ++j) {
            scalar_t alpha, falloff;
            if (!splats.alpha_at(j, splats.xy[2 * j] - cx, splats.xy[2 * j + 1] - cy, alpha_cap, &alpha, &falloff)) {
              continue;
            }
            const scalar_t next = transmittance * (1 - alpha);
            if (next < static_cast<scalar_t>(kMinTransmittance)) break;
            const scalar_t weight = alpha * transmittance;
            const scalar_t* color = &splats.color[j * channels];
            for (int64_t c = 0; c < channels; ++c) acc[c] += weight * color[c];
            transmittance = next;
            processed = static_cast<int32_t>(j + 1);
          }
          const int64_t pix = (image * grid.height + py) * grid.width + px;
          for (int64_t c = 0; c < channels; ++c) out_colors[pix * channels + c] = acc[c];
          out_alphas[pix] = 1 - transmittance;
          last_ids[pix] = processed;
        }
      }
    }
  });
}

template <typename scalar_t>
void rasterize_backward_kernel(const TileGrid& grid, int64_t images, int64_t n, int64_t channels,
                               const scalar_t* means2d, const scalar_t* conics, const scalar_t* colors,
                               const scalar_t* opacities, scalar_t alpha_cap, const int64_t* ids,
                               const scalar_t* render_alphas, const int32_t* last_ids,
                               const scalar_t* grad_colors, const scalar_t* grad_alphas,
                               scalar_t* v_means2d, scalar_t* v_conics, scalar_t* v_colors,
                               scalar_t* v_opacities) {
  const int64_t num_image_tiles = images * grid.tiles;
  parallel_for(0, images, 1, [&](int64_t begin_image, int64_t end_image) {
    std::vector<scalar_t> behind(channels);  // colour accumulated behind the current Gaussian
    TileSplats<scalar_t> splats;
    for (int64_t image = begin_image; image < end_image; ++image) {
      for (int64_t tile = 0; tile < grid.tiles; ++tile) {
        const int64_t t = image * grid.tiles + tile;
        const int64_t px0 = (tile % grid.tiles_x) * grid.tile_size, py0 = (tile / grid.tiles_x) * grid.tile_size;
        const int64_t first = grid.begin(t);
        splats.gather(first, grid.end(t, num_image_tiles), ids, means2d, conics, opacities, colors, channels);
        for (int64_t py = py0; py < std::min(py0 + grid.tile_size, grid.height); ++py) {
          for (int64_t px = px0; px < std::min(px0 + grid.tile_size, grid.width); ++px) {
            const int64_t pix = (image * grid.height + py) * grid.width + px;
            const scalar_t cx = static_cast<scalar_t>(px) + scalar_t(0.5);
            const scalar_t cy = static_cast<scalar_t>(py) + scalar_t(0.5);
            const scalar_t final_t = 1 - render_alphas[pix];
            const scalar_t* v_out = grad_colors + pix * channels;
            const scalar_t v_alpha_out = grad_alphas[pix];
            std::fill(behind.begin(), behind.end(), scalar_t(0));
            scalar_t transmittance = final_t;
            for (int64_t j = last_ids[pix] - 1; j >= 0; --j) {
              const scalar_t dx = splats.xy[2 * j] - cx, dy = splats.xy[2 * j + 1] - cy;
              scalar_t alpha, falloff;
              if (!splats.alpha_at(j, dx, dy, alpha_cap, &alpha, &falloff)) continue;
              const int64_t g = splats.id[j];
              const scalar_t one_minus = 1 - alpha;
              transmittance /= one_minus;  // transmittance in front of this Gaussian
              const scalar_t weight = alpha * transmittance;
              scalar_t v_alpha = v_alpha_out * final_t / one_minus;
              const scalar_t* color = &splats.color[j * channels];
              for (int64_t c = 0; c < channels; ++c) {
                v_colors[g * channels + c] += weight * v_out[c];
                v_alpha += v_out[c] * (color[c] * transmittance - behind[c] / one_minus);
                behind[c] += color[c] * weight;
              }
              splat_alpha_backward(&splats.conic[3 * j], splats.opacity[j], dx, dy, falloff, alpha_cap, v_alpha,
                                   v_conics + g * 3, v_means2d + g * 2, v_opacities + g);
            }
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> rasterize_tiles_cpu(
    const at::Tensor& means2d_in, const at::Tensor& conics_in, const at::Tensor& colors_in,
    const at::Tensor& opacities_in, int64_t width, int64_t height, int64_t tile_size, double alpha_cap,
    const at::Tensor& tile_offsets_in, const at::Tensor& flatten_ids_in, bool /*deterministic*/) {
  check_rasterize_args(means2d_in, conics_in, colors_in, opacities_in, width, height, tile_size, alpha_cap,
                       tile_offsets_in, flatten_ids_in);
  check_opacity_values("rasterize_tiles", opacities_in);
  const int64_t images = means2d_in.size(0), n = means2d_in.size(1), channels = colors_in.size(2);
  const at::Tensor means2d = means2d_in.contiguous(), conics = conics_in.contiguous();
  const at::Tensor colors = colors_in.contiguous(), opacities = opacities_in.contiguous();
  const at::Tensor tile_offsets = tile_offsets_in.contiguous(), flatten_ids = flatten_ids_in.contiguous();
  at::Tensor out_colors = at::empty({images, height, width, channels}, colors.options());
  at::Tensor out_alphas = at::empty({images, height, width, 1}, colors.options());
  at::Tensor last_ids = at::empty({images, height, width}, tile_offsets.options());
  if (images == 0) return {out_colors, out_alphas, last_ids};
  const TileGrid grid(width, height, tile_size, tile_offsets, flatten_ids.numel());
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "rasterize_tiles_cpu", [&] {
    rasterize_forward_kernel<scalar_t>(grid, images, n, channels, means2d.const_data_ptr<scalar_t>(),
                                       conics.const_data_ptr<scalar_t>(), colors.const_data_ptr<scalar_t>(),
                                       opacities.const_data_ptr<scalar_t>(), static_cast<scalar_t>(alpha_cap),
                                       flatten_ids.const_data_ptr<int64_t>(), out_colors.data_ptr<scalar_t>(),
                                       out_alphas.data_ptr<scalar_t>(), last_ids.data_ptr<int32_t>());
  });
  return {out_colors, out_alphas, last_ids};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_tiles_backward_cpu(
    const at::Tensor& grad_colors_in, const at::Tensor& grad_alphas_in, const at::Tensor& means2d_in,
    const at::Tensor& conics_in, const at::Tensor& colors_in, const at::Tensor& opacities_in, int64_t width,
    int64_t height, int64_t tile_size, double alpha_cap, const at::Tensor& tile_offsets_in,
    const at::Tensor& flatten_ids_in, const at::Tensor& render_alphas_in, const at::Tensor& last_ids_in,
    bool deterministic) {
  check_rasterize_args(means2d_in, conics_in, colors_in, opacities_in, width, height, tile_size, alpha_cap,
                       tile_offsets_in, flatten_ids_in);
  check_rasterize_backward_args(grad_colors_in, grad_alphas_in, colors_in, render_alphas_in, last_ids_in,
                                width, height);
  (void)deterministic;  // the CPU backward is deterministic by construction
  const int64_t images = means2d_in.size(0), n = means2d_in.size(1), channels = colors_in.size(2);
  const at::Tensor means2d = means2d_in.contiguous(), conics = conics_in.contiguous();
  const at::Tensor colors = colors_in.contiguous(), opacities = opacities_in.contiguous();
  const at::Tensor tile_offsets = tile_offsets_in.contiguous(), flatten_ids = flatten_ids_in.contiguous();
  const at::Tensor render_alphas = render_alphas_in.contiguous(), last_ids = last_ids_in.contiguous();
  const at::Tensor grad_colors = grad_colors_in.contiguous(), grad_alphas = grad_alphas_in.contiguous();
  at::Tensor v_means2d = at::zeros_like(means2d), v_conics = at::zeros_like(conics);
  at::Tensor v_colors = at::zeros_like(colors), v_opacities = at::zeros_like(opacities);
  if (images == 0) return {v_means2d, v_conics, v_colors, v_opacities};
  const TileGrid grid(width, height, tile_size, tile_offsets, flatten_ids.numel());
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "rasterize_tiles_backward_cpu", [&] {
    rasterize_backward_kernel<scalar_t>(
        grid, images, n, channels, means2d.const_data_ptr<scalar_t>(), conics.const_data_ptr<scalar_t>(),
        colors.const_data_ptr<scalar_t>(), opacities.const_data_ptr<scalar_t>(), static_cast<scalar_t>(alpha_cap),
        flatten_ids.const_data_ptr<int64_t>(), render_alphas.const_data_ptr<scalar_t>(),
        last_ids.const_data_ptr<int32_t>(), grad_colors.const_data_ptr<scalar_t>(),
        grad_alphas.const_data_ptr<scalar_t>(), v_means2d.data_ptr<scalar_t>(), v_conics.data_ptr<scalar_t>(),
        v_colors.data_ptr<scalar_t>(), v_opacities.data_ptr<scalar_t>());
  });
  return {v_means2d, v_conics, v_colors, v_opacities};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) {
  m.impl("rasterize_tiles", cpu_op<&rasterize_tiles_cpu>);
  m.impl("rasterize_tiles_backward", cpu_op<&rasterize_tiles_backward_cpu>);
}

}  // namespace ppt
