// Torch-free launchers of the CUDA Gaussian rasterization kernels (csrc/raster/*_cuda.cu).
// Buffers are raw device pointers; `kind` gives the floating type (float32 or float64) of every
// floating buffer of a call. The *_cuda.cpp glue validates, allocates and checks launch errors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "ppt/common.h"

namespace ppt {
namespace raster_cuda {

// Calls f(T{}) with T the C++ type of kind (float32 or float64; the glue rejects other kinds).
template <typename F>
void dispatch_float_kind(FloatKind kind, F&& f) {
  if (kind == FloatKind::kDouble) {
    f(double{});
  } else {
    f(float{});
  }
}

inline unsigned int blocks_for(int64_t count, int threads) {
  return static_cast<unsigned int>((count + threads - 1) / threads);
}

// ---- projection (project_cuda.cu) ------------------------------------------------------------
struct ProjectArgs {
  int64_t batches, cams, n, width, height;
  double near_plane, far_plane, eps2d;
};
void project_forward(FloatKind kind, const ProjectArgs& a, const void* means, const void* quats,
                     const void* scales, const void* viewmats, const void* Ks, void* means2d, void* depths,
                     void* conics, int32_t* radii, cudaStream_t stream);
// Gradient outputs must be zero-initialized; each Gaussian's row has a single writer.
void project_backward(FloatKind kind, const ProjectArgs& a, const void* means, const void* quats,
                      const void* scales, const void* viewmats, const void* Ks, const int32_t* radii,
                      const void* grad_means2d, const void* grad_depths, const void* grad_conics,
                      void* grad_means, void* grad_quats, void* grad_scales, cudaStream_t stream);

// ---- spherical harmonics (sh_cuda.cu) --------------------------------------------------------
void sh_forward(FloatKind kind, int degree, int64_t batches, int64_t cams, int64_t n, int64_t coeffs,
                const void* sh, const void* means, const void* viewmats, void* colors, cudaStream_t stream);
// grad_sh and grad_means must be zero-initialized.
void sh_backward(FloatKind kind, int degree, int64_t batches, int64_t cams, int64_t n, int64_t coeffs,
                 const void* sh, const void* means, const void* viewmats, const void* grad_colors,
                 void* grad_sh, void* grad_means, cudaStream_t stream);

// ---- tile binning (bin_cuda.cu) --------------------------------------------------------------
struct TileGridArgs {
  int64_t images, n;
  int tile_size, tiles_x, tiles_y;
};
// Tiles overlapped by each Gaussian: int32 output and an int64 copy to scan.
void bin_count(FloatKind kind, const TileGridArgs& g, const void* means2d, const int32_t* radii,
               int32_t* tiles_per_gaussian, int64_t* counts, cudaStream_t stream);
size_t inclusive_scan_temp_bytes(int64_t count);
void inclusive_scan(void* temp, size_t temp_bytes, const int64_t* in, int64_t* out, int64_t count,
                    cudaStream_t stream);
// Writes key = (image * tiles + tile) << 32 | float32 bits of depth and value = image * N + gaussian
// for every intersection, at positions given by the inclusive scan of counts.
void bin_fill(FloatKind kind, const TileGridArgs& g, const void* means2d, const int32_t* radii,
              const void* depths, const int64_t* cumulative, uint64_t* keys, int64_t* values,
              cudaStream_t stream);
// Stable LSD radix sort of (key, value) pairs on bits [0, end_bit).
size_t sort_pairs_temp_bytes(int64_t count, int end_bit);
void sort_pairs(void* temp, size_t temp_bytes, const uint64_t* keys_in, uint64_t* keys_out,
                const int64_t* values_in, int64_t* values_out, int64_t count, int end_bit, cudaStream_t stream);
// offsets[t] = first position whose key >> 32 is >= t, for t in [0, num_image_tiles).
void tile_offsets(const uint64_t* sorted_keys, int64_t count, int64_t num_image_tiles, int32_t* offsets,
                  cudaStream_t stream);
// Keys of the deterministic backward: value i gets key ids[i] (the Gaussian row it belongs to).
void iota_with_keys(const int64_t* ids, int64_t count, uint64_t* keys, int64_t* values, cudaStream_t stream);

// ---- compositing (rasterize_cuda.cu) ---------------------------------------------------------
struct RasterArgs {
  int64_t images, n, channels, width, height, entries;
  int tile_size, tiles_x, tiles_y;
  double alpha_cap;
};
void rasterize_forward(FloatKind kind, const RasterArgs& a, const void* means2d, const void* conics,
                       const void* colors, const void* opacities, const int32_t* tile_offsets,
                       const int64_t* flatten_ids, void* out_colors, void* out_alphas, int32_t* last_ids,
                       cudaStream_t stream);
// Number of values per intersection in the deterministic buffer: 2 (mean2d) + 3 (conic) + 1
// (opacity) + channels.
inline int64_t per_entry_values(int64_t channels) { return 6 + channels; }
// Gradients w.r.t. means2d, conics, colors and opacities (zero-initialized outputs). With
// `entry_grads` null they are accumulated with float atomics; otherwise each intersection's
// gradient is written (in a fixed order) to entry_grads (entries x per_entry_values), which
// reduce_entry_grads then sums per Gaussian in sorted-position order (bitwise reproducible).
void rasterize_backward(FloatKind kind, const RasterArgs& a, const void* means2d, const void* conics,
                        const void* colors, const void* opacities, const int32_t* tile_offsets,
                        const int64_t* flatten_ids, const void* render_alphas, const int32_t* last_ids,
                        const void* grad_colors, const void* grad_alphas, void* grad_means2d,
                        void* grad_conics, void* grad_colors_out, void* grad_opacities, void* entry_grads,
                        cudaStream_t stream);
// sorted_keys/sorted_entries: the intersections sorted by Gaussian row (stable).
void reduce_entry_grads(FloatKind kind, const RasterArgs& a, const uint64_t* sorted_keys,
                        const int64_t* sorted_entries, const void* entry_grads, void* grad_means2d,
                        void* grad_conics, void* grad_colors_out, void* grad_opacities, cudaStream_t stream);

}  // namespace raster_cuda
}  // namespace ppt
