// CPU tile binning: every visible Gaussian is duplicated into each tile its 3-sigma box overlaps,
// and the copies are sorted by (image, tile, depth) with ties broken by Gaussian index. Depth is
// compared in float32 on every device (it is the CUDA radix-sort key), so orders agree.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "ppt/cpu_parallel.h"
#include "ppt/gaussian.h"
#include "raster/raster_checks.h"

namespace ppt {
namespace {

struct TileEntry {
  int32_t tile;
  float depth;
  int64_t id;  // image * N + gaussian
  bool operator<(const TileEntry& o) const {
    if (tile != o.tile) return tile < o.tile;
    if (depth != o.depth) return depth < o.depth;
    return id < o.id;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> bin_gaussians_cpu(const at::Tensor& means2d_in,
                                                                 const at::Tensor& radii_in,
                                                                 const at::Tensor& depths_in, int64_t width,
                                                                 int64_t height, int64_t tile_size) {
  const int64_t tiles = check_bin_args(means2d_in, radii_in, depths_in, width, height, tile_size);
  const int64_t images = means2d_in.size(0), n = means2d_in.size(1);
  const int tiles_x = static_cast<int>((width + tile_size - 1) / tile_size);
  const int tiles_y = static_cast<int>((height + tile_size - 1) / tile_size);
  const at::Tensor means2d = means2d_in.contiguous(), radii = radii_in.contiguous(), depths = depths_in.contiguous();
  at::Tensor tiles_per_gaussian = at::zeros({images, n}, radii.options());
  at::Tensor tile_offsets = at::zeros({images, tiles_y, tiles_x}, radii.options());
  std::vector<int64_t> first(images * n + 1, 0);  // exclusive scan of tiles_per_gaussian
  std::vector<TileEntry> entries;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "bin_gaussians_cpu", [&] {
    const scalar_t* mp = means2d.const_data_ptr<scalar_t>();
    const scalar_t* dp = depths.const_data_ptr<scalar_t>();
    const int32_t* rp = radii.const_data_ptr<int32_t>();
    int32_t* counts = tiles_per_gaussian.data_ptr<int32_t>();
    auto rect_of = [&](int64_t idx, int* x0, int* x1, int* y0, int* y1) {
      tile_rect<scalar_t>(mp + idx * 2, rp[idx], static_cast<int>(tile_size), tiles_x, tiles_y, x0, x1, y0, y1);
    };
    parallel_for(0, images * n, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        int x0, x1, y0, y1;
        rect_of(idx, &x0, &x1, &y0, &y1);
        counts[idx] = (x1 - x0) * (y1 - y0);
      }
    });
    for (int64_t idx = 0; idx < images * n; ++idx) first[idx + 1] = first[idx] + counts[idx];
    TORCH_CHECK(first.back() < std::numeric_limits<int32_t>::max(), "bin_gaussians: ", first.back(),
                " tile intersections exceed the int32 tile offsets; render fewer images per call");
    entries.resize(first.back());
    parallel_for(0, images * n, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        int x0, x1, y0, y1;
        rect_of(idx, &x0, &x1, &y0, &y1);
        int64_t out = first[idx];
        const int32_t image_tile0 = static_cast<int32_t>((idx / n) * tiles);
        for (int ty = y0; ty < y1; ++ty)
          for (int tx = x0; tx < x1; ++tx)
            entries[out++] = {image_tile0 + ty * tiles_x + tx, static_cast<float>(dp[idx]), idx};
      }
    });
  });
  // Entries are generated image by image, so each image's block sorts independently.
  parallel_for(0, images, 1, [&](int64_t begin, int64_t end) {
    for (int64_t image = begin; image < end; ++image) {
      std::sort(entries.begin() + first[image * n], entries.begin() + first[(image + 1) * n]);
    }
  });
  const int64_t total = static_cast<int64_t>(entries.size());
  at::Tensor flatten_ids = at::empty({total}, radii.options().dtype(at::kLong));
  int64_t* ids = flatten_ids.data_ptr<int64_t>();
  int32_t* offsets = tile_offsets.data_ptr<int32_t>();
  // offsets[t] = index of the first entry with tile key >= t
  int64_t cursor = 0;
  for (int64_t t = 0; t < images * tiles; ++t) {
    while (cursor < total && entries[cursor].tile < t) ++cursor;
    offsets[t] = static_cast<int32_t>(cursor);
  }
  for (int64_t i = 0; i < total; ++i) ids[i] = entries[i].id;
  return {tiles_per_gaussian, tile_offsets, flatten_ids};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CPU, m) { m.impl("bin_gaussians", cpu_op<&bin_gaussians_cpu>); }

}  // namespace ppt
