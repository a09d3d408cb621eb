// CUDA glue of the tile rasterizer: validation (shared with CPU), allocation, launch; the
// deterministic backward also sorts intersections by Gaussian to reduce them in a fixed order.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "raster/raster_checks.h"
#include "raster/raster_cuda.h"

namespace ppt {
namespace {

raster_cuda::RasterArgs raster_args(const at::Tensor& means2d, const at::Tensor& colors, int64_t width,
                                    int64_t height, int64_t tile_size, double alpha_cap,
                                    const at::Tensor& flatten_ids) {
  return raster_cuda::RasterArgs{means2d.size(0), means2d.size(1), colors.size(2), width, height,
                                 flatten_ids.numel(), static_cast<int>(tile_size),
                                 static_cast<int>((width + tile_size - 1) / tile_size),
                                 static_cast<int>((height + tile_size - 1) / tile_size), alpha_cap};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> rasterize_tiles_cuda(
    const at::Tensor& means2d_in, const at::Tensor& conics_in, const at::Tensor& colors_in,
    const at::Tensor& opacities_in, int64_t width, int64_t height, int64_t tile_size, double alpha_cap,
    const at::Tensor& tile_offsets_in, const at::Tensor& flatten_ids_in, bool /*deterministic*/) {
  check_rasterize_args(means2d_in, conics_in, colors_in, opacities_in, width, height, tile_size, alpha_cap,
                       tile_offsets_in, flatten_ids_in);
  check_opacity_values("rasterize_tiles", opacities_in);
  const c10::cuda::CUDAGuard guard(means2d_in.device());
  const at::Tensor means2d = means2d_in.contiguous(), conics = conics_in.contiguous();
  const at::Tensor colors = colors_in.contiguous(), opacities = opacities_in.contiguous();
  const at::Tensor tile_offsets = tile_offsets_in.contiguous(), flatten_ids = flatten_ids_in.contiguous();
  const auto args = raster_args(means2d, colors, width, height, tile_size, alpha_cap, flatten_ids);
  at::Tensor out_colors = at::empty({args.images, height, width, args.channels}, colors.options());
  at::Tensor out_alphas = at::empty({args.images, height, width, 1}, colors.options());
  at::Tensor last_ids = at::empty({args.images, height, width}, tile_offsets.options());
  raster_cuda::rasterize_forward(float_kind(colors.scalar_type()), args, means2d.const_data_ptr(), conics.const_data_ptr(),
                                 colors.const_data_ptr(), opacities.const_data_ptr(),
                                 tile_offsets.const_data_ptr<int32_t>(), flatten_ids.const_data_ptr<int64_t>(),
                                 out_colors.data_ptr(), out_alphas.data_ptr(), last_ids.data_ptr<int32_t>(),
                                 c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out_colors, out_alphas, last_ids};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_tiles_backward_cuda(
    const at::Tensor& grad_colors_in, const at::Tensor& grad_alphas_in, const at::Tensor& means2d_in,
    const at::Tensor& conics_in, const at::Tensor& colors_in, const at::Tensor& opacities_in, int64_t width,
    int64_t height, int64_t tile_size, double alpha_cap, const at::Tensor& tile_offsets_in,
    const at::Tensor& flatten_ids_in, const at::Tensor& render_alphas_in, const at::Tensor& last_ids_in,
    bool deterministic) {
  check_rasterize_args(means2d_in, conics_in, colors_in, opacities_in, width, height, tile_size, alpha_cap,
                       tile_offsets_in, flatten_ids_in);
  check_rasterize_backward_args(grad_colors_in, grad_alphas_in, colors_in, render_alphas_in, last_ids_in,
                                width, height);
  const c10::cuda::CUDAGuard guard(means2d_in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor means2d = means2d_in.contiguous(), conics = conics_in.contiguous();
  const at::Tensor colors = colors_in.contiguous(), opacities = opacities_in.contiguous();
  const at::Tensor tile_offsets = tile_offsets_in.contiguous(), flatten_ids = flatten_ids_in.contiguous();
  const at::Tensor render_alphas = render_alphas_in.contiguous(), last_ids = last_ids_in.contiguous();
  const at::Tensor grad_colors = grad_colors_in.contiguous(), grad_alphas = grad_alphas_in.contiguous();
  const auto args = raster_args(means2d, colors, width, height, tile_size, alpha_cap, flatten_ids);
  const FloatKind kind = float_kind(colors.scalar_type());
  at::Tensor v_means2d = at::zeros_like(means2d), v_conics = at::zeros_like(conics);
  at::Tensor v_colors = at::zeros_like(colors), v_opacities = at::zeros_like(opacities);
  at::Tensor entry_grads;
  if (deterministic) {
    entry_grads = at::zeros({args.entries, raster_cuda::per_entry_values(args.channels)}, colors.options());
  }
  raster_cuda::rasterize_backward(kind, args, means2d.const_data_ptr(), conics.const_data_ptr(),
                                  colors.const_data_ptr(), opacities.const_data_ptr(),
                                  tile_offsets.const_data_ptr<int32_t>(), flatten_ids.const_data_ptr<int64_t>(),
                                  render_alphas.const_data_ptr(), last_ids.const_data_ptr<int32_t>(),
                                  grad_colors.const_data_ptr(), grad_alphas.const_data_ptr(), v_means2d.data_ptr(),
                                  v_conics.data_ptr(), v_colors.data_ptr(), v_opacities.data_ptr(),
                                  deterministic ? entry_grads.data_ptr() : nullptr, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (deterministic && args.entries > 0) {
    // Group the intersections by Gaussian row (stable, so each group keeps sorted-position order).
    const at::TensorOptions long_options = flatten_ids.options();
    at::Tensor keys = at::empty({args.entries}, long_options), entries = at::empty({args.entries}, long_options);
    at::Tensor sorted_keys = at::empty({args.entries}, long_options);
    at::Tensor sorted_entries = at::empty({args.entries}, long_options);
    raster_cuda::iota_with_keys(flatten_ids.const_data_ptr<int64_t>(), args.entries,
                                reinterpret_cast<uint64_t*>(keys.data_ptr<int64_t>()), entries.data_ptr<int64_t>(),
                                stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    int row_bits = 1;
    while ((int64_t(1) << row_bits) < args.images * args.n) ++row_bits;
    const size_t sort_bytes = raster_cuda::sort_pairs_temp_bytes(args.entries, row_bits);
    at::Tensor sort_temp = at::empty({static_cast<int64_t>(sort_bytes)}, long_options.dtype(at::kByte));
    raster_cuda::sort_pairs(sort_temp.data_ptr(), sort_bytes, reinterpret_cast<const uint64_t*>(keys.const_data_ptr<int64_t>()),
                            reinterpret_cast<uint64_t*>(sorted_keys.data_ptr<int64_t>()), entries.const_data_ptr<int64_t>(),
                            sorted_entries.data_ptr<int64_t>(), args.entries, row_bits, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    raster_cuda::reduce_entry_grads(kind, args, reinterpret_cast<const uint64_t*>(sorted_keys.const_data_ptr<int64_t>()),
                                    sorted_entries.const_data_ptr<int64_t>(), entry_grads.const_data_ptr(),
                                    v_means2d.data_ptr(), v_conics.data_ptr(), v_colors.data_ptr(),
                                    v_opacities.data_ptr(), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {v_means2d, v_conics, v_colors, v_opacities};
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) {
  m.impl("rasterize_tiles", &rasterize_tiles_cuda);
  m.impl("rasterize_tiles_backward", &rasterize_tiles_backward_cuda);
}

}  // namespace ppt
