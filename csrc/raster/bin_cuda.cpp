// CUDA glue of the tile binning: count, scan, emit keys, CUB radix sort, tile ranges. The total
// number of intersections is read back once to size the key buffers.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "raster/raster_checks.h"
#include "raster/raster_cuda.h"

namespace ppt {
namespace {

// Bytes of scratch space for CUB, from the caching allocator.
at::Tensor scratch(size_t bytes, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> bin_gaussians_cuda(const at::Tensor& means2d_in,
                                                                  const at::Tensor& radii_in,
                                                                  const at::Tensor& depths_in, int64_t width,
                                                                  int64_t height, int64_t tile_size) {
  const int64_t tiles = check_bin_args(means2d_in, radii_in, depths_in, width, height, tile_size);
  const c10::cuda::CUDAGuard guard(means2d_in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t images = means2d_in.size(0), n = means2d_in.size(1), rows = images * n;
  const int tiles_x = static_cast<int>((width + tile_size - 1) / tile_size);
  const int tiles_y = static_cast<int>((height + tile_size - 1) / tile_size);
  const at::Tensor means2d = means2d_in.contiguous(), radii = radii_in.contiguous(), depths = depths_in.contiguous();
  const FloatKind kind = float_kind(means2d.scalar_type());
  const raster_cuda::TileGridArgs grid{images, n, static_cast<int>(tile_size), tiles_x, tiles_y};

  at::Tensor tiles_per_gaussian = at::zeros({images, n}, radii.options());
  at::Tensor counts = at::empty({rows}, radii.options().dtype(at::kLong));
  at::Tensor cumulative = at::empty({rows}, counts.options());
  raster_cuda::bin_count(kind, grid, means2d.const_data_ptr(), radii.const_data_ptr<int32_t>(),
                         tiles_per_gaussian.data_ptr<int32_t>(), counts.data_ptr<int64_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const size_t scan_bytes = raster_cuda::inclusive_scan_temp_bytes(rows);
  at::Tensor scan_temp = scratch(scan_bytes, counts);
  raster_cuda::inclusive_scan(scan_temp.data_ptr(), scan_bytes, counts.const_data_ptr<int64_t>(),
                              cumulative.data_ptr<int64_t>(), rows, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t total = rows == 0 ? 0 : cumulative[rows - 1].item<int64_t>();
  TORCH_CHECK(total < std::numeric_limits<int32_t>::max(), "bin_gaussians: ", total,
              " tile intersections exceed the int32 tile offsets; render fewer images per call");

  at::Tensor keys = at::empty({total}, counts.options());  // uint64 bit patterns in int64 storage
  at::Tensor values = at::empty({total}, counts.options());
  at::Tensor sorted_keys = at::empty({total}, counts.options());
  at::Tensor flatten_ids = at::empty({total}, counts.options());
  raster_cuda::bin_fill(kind, grid, means2d.const_data_ptr(), radii.const_data_ptr<int32_t>(),
                        depths.const_data_ptr(), cumulative.const_data_ptr<int64_t>(),
                        reinterpret_cast<uint64_t*>(keys.data_ptr<int64_t>()), values.data_ptr<int64_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  int tile_bits = 0;
  while ((int64_t(1) << tile_bits) < images * tiles) ++tile_bits;
  const int end_bit = 32 + tile_bits;
  const size_t sort_bytes = raster_cuda::sort_pairs_temp_bytes(total, end_bit);
  at::Tensor sort_temp = scratch(sort_bytes, counts);
  raster_cuda::sort_pairs(sort_temp.data_ptr(), sort_bytes, reinterpret_cast<const uint64_t*>(keys.const_data_ptr<int64_t>()),
                          reinterpret_cast<uint64_t*>(sorted_keys.data_ptr<int64_t>()), values.const_data_ptr<int64_t>(),
                          flatten_ids.data_ptr<int64_t>(), total, end_bit, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  at::Tensor tile_offsets = at::zeros({images, tiles_y, tiles_x}, radii.options());
  raster_cuda::tile_offsets(reinterpret_cast<const uint64_t*>(sorted_keys.const_data_ptr<int64_t>()), total,
                            images * tiles, tile_offsets.data_ptr<int32_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {tiles_per_gaussian, tile_offsets, flatten_ids};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) { m.impl("bin_gaussians", &bin_gaussians_cuda); }

}  // namespace ppt
