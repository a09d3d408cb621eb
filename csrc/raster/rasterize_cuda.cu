// CUDA tile rasterizer. One block per (image, tile), one thread per pixel; the tile's depth-sorted
// Gaussians are staged in shared memory in rounds of kBatch. Channels are processed in chunks of
// at most 32 held in registers (one launch per chunk): compositing weights do not depend on the
// channels, so chunked passes give exactly the single-pass result.
//
// The backward walks each tile back to front. Per Gaussian, the block's pixel gradients are summed
// per warp with shuffles; then either lane 0 adds them to global memory with atomics (fast,
// order-dependent float sums), or, deterministic mode, the warps' partial sums are combined in a
// fixed order and written to the intersection's own slot, and reduce_entry_grads sums the slots of
// each Gaussian in sorted order.
#include <type_traits>

#include "ppt/cuda_launch.cuh"
#include "ppt/gaussian.h"
#include "raster/raster_cuda.h"

namespace ppt {
namespace raster_cuda {
namespace {

constexpr int kBatch = 256;  // Gaussians staged in shared memory per round
constexpr int kMaxChunk = 32;
constexpr int kGeomValues = 6;  // mean2d (2) + conic (3) + opacity (1)

struct TileCoords {
  int64_t image_tile, image, begin, end, px, py;
  bool inside;
};

__device__ TileCoords tile_coords(const RasterArgs& a, const int32_t* offsets) {
  TileCoords t;
  const int64_t tiles = static_cast<int64_t>(a.tiles_x) * a.tiles_y;
  t.image_tile = blockIdx.x;
  t.image = t.image_tile / tiles;
  const int64_t tile = t.image_tile % tiles;
  t.px = (tile % a.tiles_x) * a.tile_size + threadIdx.x % a.tile_size;
  t.py = (tile / a.tiles_x) * a.tile_size + threadIdx.x / a.tile_size;
  t.inside = t.px < a.width && t.py < a.height;
  t.begin = offsets[t.image_tile];
  t.end = t.image_tile + 1 < a.images * tiles ? offsets[t.image_tile + 1] : a.entries;
  return t;
}

template <typename T>
struct SharedSplats {
  int64_t id[kBatch];
  T xy[kBatch * 2];
  T conic[kBatch * 3];
  T opacity[kBatch];

  __device__ void load(int64_t start, int len, const int64_t* ids, const T* means2d, const T* conics,
                       const T* opacities) {
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
      const int64_t g = ids[start + i];
      id[i] = g;
      xy[2 * i] = means2d[2 * g];
      xy[2 * i + 1] = means2d[2 * g + 1];
      for (int c = 0; c < 3; ++c) conic[3 * i + c] = conics[3 * g + c];
      opacity[i] = opacities[g];
    }
  }
};

// MaxThreads (launch bound) caps registers so that a block of tile_size^2 threads always fits an SM:
// 256 for tiles up to 16x16, 1024 for larger tiles.
template <typename T, int CH, int MaxThreads>
__global__ void __launch_bounds__(MaxThreads) rasterize_forward_kernel(RasterArgs a, int ch0, int nch, const T* means2d, const T* conics,
                                         const T* colors, const T* opacities, const int32_t* offsets,
                                         const int64_t* ids, T* out_colors, T* out_alphas, int32_t* last_ids) {
  __shared__ SharedSplats<T> s;
  const TileCoords t = tile_coords(a, offsets);
  const T cx = static_cast<T>(t.px) + T(0.5), cy = static_cast<T>(t.py) + T(0.5);
  const T cap = static_cast<T>(a.alpha_cap);
  bool done = !t.inside;
  T transmittance = 1;
  T acc[CH];
#pragma unroll
  for (int c = 0; c < CH; ++c) acc[c] = 0;
  int32_t processed = 0;
  for (int64_t start = t.begin; start < t.end; start += kBatch) {
    if (__syncthreads_count(done) == static_cast<int>(blockDim.x)) break;
    const int len = static_cast<int>(min(static_cast<int64_t>(kBatch), t.end - start));
    s.load(start, len, ids, means2d, conics, opacities);
    __syncthreads();
    for (int j = 0; j < len && !done; ++j) {
      T alpha, falloff;
      if (!splat_alpha(s.conic + 3 * j, s.opacity[j], s.xy[2 * j] - cx, s.xy[2 * j + 1] - cy, cap, &alpha,
                       &falloff)) {
        continue;
      }
      const T next = transmittance * (1 - alpha);
      if (next < static_cast<T>(kMinTransmittance)) {
        done = true;
        break;
      }
      const T weight = alpha * transmittance;
      const T* color = colors + s.id[j] * a.channels + ch0;
#pragma unroll
      for (int c = 0; c < CH; ++c) {
        if (c < nch) acc[c] += weight * color[c];
      }
      transmittance = next;
      processed = static_cast<int32_t>(start + j - t.begin + 1);
    }
    __syncthreads();
  }
  if (!t.inside) return;
  const int64_t pix = (t.image * a.height + t.py) * a.width + t.px;
#pragma unroll
  for (int c = 0; c < CH; ++c) {
    if (c < nch) out_colors[pix * a.channels + ch0 + c] = acc[c];
  }
  if (ch0 == 0) {
    out_alphas[pix] = 1 - transmittance;
    last_ids[pix] = processed;
  }
}

// Sum over the lanes of a (possibly partial) warp; lane 0 gets the total.
template <typename T>
__device__ T warp_sum(T v, unsigned mask, int lanes) {
  const int lane = threadIdx.x % 32;
  for (int offset = 16; offset > 0; offset /= 2) {
    const T other = __shfl_down_sync(mask, v, offset);
    if (lane + offset < lanes) v += other;
  }
  return v;
}

template <typename T, int CH, int MaxThreads>
__global__ void __launch_bounds__(MaxThreads) rasterize_backward_kernel(RasterArgs a, int ch0, int nch, const T* means2d, const T* conics,
                                          const T* colors, const T* opacities, const int32_t* offsets,
                                          const int64_t* ids, const T* render_alphas, const int32_t* last_ids,
                                          const T* grad_colors, const T* grad_alphas, T* g_means2d, T* g_conics,
                                          T* g_colors, T* g_opacities, T* entry_grads) {
  constexpr int kValues = kGeomValues + CH;
  __shared__ SharedSplats<T> s;
  __shared__ T s_partial[32 * kValues];
  __shared__ long long s_block_last;
  const TileCoords t = tile_coords(a, offsets);
  const T cx = static_cast<T>(t.px) + T(0.5), cy = static_cast<T>(t.py) + T(0.5);
  const T cap = static_cast<T>(a.alpha_cap);
  const int64_t pix = (t.image * a.height + t.py) * a.width + t.px;
  const T final_t = t.inside ? 1 - render_alphas[pix] : T(1);
  const int64_t my_last = t.inside ? t.begin + last_ids[pix] : t.begin;  // exclusive
  T v_out[CH];
#pragma unroll
  for (int c = 0; c < CH; ++c) v_out[c] = (t.inside && c < nch) ? grad_colors[pix * a.channels + ch0 + c] : T(0);
  // The alpha output's gradient enters once, in the first channel chunk.
  const T v_alpha_out = (t.inside && ch0 == 0) ? grad_alphas[pix] : T(0);

  if (threadIdx.x == 0) s_block_last = t.begin;
  __syncthreads();
  atomicMax(&s_block_last, static_cast<long long>(my_last));
  __syncthreads();
  const int64_t block_last = s_block_last;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warps = (blockDim.x + 31) / 32;
  const int lanes = min(32, static_cast<int>(blockDim.x) - warp * 32);
  const unsigned mask = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
  const int64_t stride = kGeomValues + a.channels;

  T transmittance = final_t;
  T behind[CH];
#pragma unroll
  for (int c = 0; c < CH; ++c) behind[c] = 0;
  for (int64_t stop = block_last; stop > t.begin; stop -= kBatch) {
    const int64_t start = max(t.begin, stop - kBatch);
    const int len = static_cast<int>(stop - start);
    __syncthreads();  // the previous round's shared data is no longer read
    s.load(start, len, ids, means2d, conics, opacities);
    __syncthreads();
    for (int j = len - 1; j >= 0; --j) {
      const int64_t k = start + j;
      T v[kValues];
#pragma unroll
      for (int i = 0; i < kValues; ++i) v[i] = 0;
      bool contributes = false;
      if (k < my_last) {
        const T dx = s.xy[2 * j] - cx, dy = s.xy[2 * j + 1] - cy;
        T alpha, falloff;
        if (splat_alpha(s.conic + 3 * j, s.opacity[j], dx, dy, cap, &alpha, &falloff)) {
          contributes = true;
          const T one_minus = 1 - alpha;
          transmittance /= one_minus;  // transmittance in front of this Gaussian
          const T weight = alpha * transmittance;
          T v_alpha = v_alpha_out * final_t / one_minus;
          const T* color = colors + s.id[j] * a.channels + ch0;
#pragma unroll
          for (int c = 0; c < CH; ++c) {
            if (c < nch) {
              v[kGeomValues + c] = weight * v_out[c];
              v_alpha += v_out[c] * (color[c] * transmittance - behind[c] / one_minus);
              behind[c] += color[c] * weight;
            }
          }
          splat_alpha_backward(s.conic + 3 * j, s.opacity[j], dx, dy, falloff, cap, v_alpha, v + 2, v, v + 5);
        }
      }
      const int64_t g = s.id[j];
      if (entry_grads == nullptr) {
        if (!__any_sync(mask, contributes)) continue;
#pragma unroll
        for (int i = 0; i < kValues; ++i) v[i] = warp_sum(v[i], mask, lanes);
        if (lane == 0) {
          atomicAdd(g_means2d + 2 * g, v[0]);
          atomicAdd(g_means2d + 2 * g + 1, v[1]);
          for (int i = 0; i < 3; ++i) atomicAdd(g_conics + 3 * g + i, v[2 + i]);
          atomicAdd(g_opacities + g, v[5]);
          for (int c = 0; c < nch; ++c) atomicAdd(g_colors + g * a.channels + ch0 + c, v[kGeomValues + c]);
        }
      } else {
#pragma unroll
        for (int i = 0; i < kValues; ++i) v[i] = warp_sum(v[i], mask, lanes);
        if (lane == 0) {
#pragma unroll
          for (int i = 0; i < kValues; ++i) s_partial[warp * kValues + i] = v[i];
        }
        __syncthreads();
        // A block can have fewer threads (tile_size^2) than values (6 + up to 32 channels).
        for (int i = threadIdx.x; i < kGeomValues + nch; i += blockDim.x) {
          T total = 0;
          for (int w = 0; w < warps; ++w) total += s_partial[w * kValues + i];
          const int64_t slot = i < kGeomValues ? i : ch0 + i;
          entry_grads[k * stride + slot] += total;
        }
        __syncthreads();
      }
    }
  }
}

template <typename T>
__global__ void reduce_entry_grads_kernel(RasterArgs a, const uint64_t* keys, const int64_t* sorted_entries,
                                          const T* entry_grads, T* g_means2d, T* g_conics, T* g_colors,
                                          T* g_opacities) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (p >= a.entries || (p > 0 && keys[p - 1] == keys[p])) return;  // one thread per Gaussian segment
  const int64_t g = static_cast<int64_t>(keys[p]);
  const int64_t stride = kGeomValues + a.channels;
  for (int64_t i = 0; i < stride; ++i) {
    T total = 0;
    for (int64_t q = p; q < a.entries && keys[q] == keys[p]; ++q) total += entry_grads[sorted_entries[q] * stride + i];
    if (i < 2) {
      g_means2d[2 * g + i] = total;
    } else if (i < 5) {
      g_conics[3 * g + i - 2] = total;
    } else if (i == 5) {
      g_opacities[g] = total;
    } else {
      g_colors[g * a.channels + i - kGeomValues] = total;
    }
  }
}

// Calls launch(ch0, nch, Chunk<CH>{}) for every chunk of at most 32 channels, CH the register
// capacity used for that chunk.
template <int CH>
struct Chunk {
  static constexpr int value = CH;
};

constexpr int kSmallBlock = 256;
constexpr int kLargeBlock = 1024;

template <typename F>
void for_each_channel_chunk(int64_t channels, F&& launch) {
  for (int64_t ch0 = 0; ch0 < channels; ch0 += kMaxChunk) {
    const int nch = static_cast<int>(channels - ch0 < kMaxChunk ? channels - ch0 : kMaxChunk);
    if (nch == 1) launch(static_cast<int>(ch0), nch, Chunk<1>{});
    else if (nch == 2) launch(static_cast<int>(ch0), nch, Chunk<2>{});
    else if (nch == 3) launch(static_cast<int>(ch0), nch, Chunk<3>{});
    else if (nch == 4) launch(static_cast<int>(ch0), nch, Chunk<4>{});
    else if (nch <= 8) launch(static_cast<int>(ch0), nch, Chunk<8>{});
    else if (nch <= 16) launch(static_cast<int>(ch0), nch, Chunk<16>{});
    else launch(static_cast<int>(ch0), nch, Chunk<kMaxChunk>{});
  }
}

// fn(std::integral_constant<int, B>{}) with B the kernels' block-size bound for `threads`.
template <typename Fn>
void with_block_size(int threads, Fn&& fn) {
  if (threads <= kSmallBlock) fn(std::integral_constant<int, kSmallBlock>{});
  else fn(std::integral_constant<int, kLargeBlock>{});
}

}  // namespace

void rasterize_forward(FloatKind kind, const RasterArgs& a, const void* means2d, const void* conics,
                       const void* colors, const void* opacities, const int32_t* tile_offsets,
                       const int64_t* flatten_ids, void* out_colors, void* out_alphas, int32_t* last_ids,
                       cudaStream_t stream) {
  const int64_t blocks = a.images * a.tiles_x * a.tiles_y;
  if (blocks == 0) return;
  const int threads = a.tile_size * a.tile_size;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    for_each_channel_chunk(a.channels, [&](int ch0, int nch, auto chunk) {
      constexpr int CH = decltype(chunk)::value;
      with_block_size(threads, [&](auto block) {
        PPT_LAUNCH((rasterize_forward_kernel<T, CH, decltype(block)::value>), static_cast<unsigned int>(blocks),
                   threads, 0, stream)(
            a, ch0, nch, static_cast<const T*>(means2d), static_cast<const T*>(conics),
            static_cast<const T*>(colors), static_cast<const T*>(opacities), tile_offsets, flatten_ids,
            static_cast<T*>(out_colors), static_cast<T*>(out_alphas), last_ids);
      });
    });
  });
}

void rasterize_backward(FloatKind kind, const RasterArgs& a, const void* means2d, const void* conics,
                        const void* colors, const void* opacities, const int32_t* tile_offsets,
                        const int64_t* flatten_ids, const void* render_alphas, const int32_t* last_ids,
                        const void* grad_colors, const void* grad_alphas, void* grad_means2d,
                        void* grad_conics, void* grad_colors_out, void* grad_opacities, void* entry_grads,
                        cudaStream_t stream) {
  const int64_t blocks = a.images * a.tiles_x * a.tiles_y;
  if (blocks == 0 || a.entries == 0) return;
  const int threads = a.tile_size * a.tile_size;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    for_each_channel_chunk(a.channels, [&](int ch0, int nch, auto chunk) {
      constexpr int CH = decltype(chunk)::value;
      with_block_size(threads, [&](auto block) {
        PPT_LAUNCH((rasterize_backward_kernel<T, CH, decltype(block)::value>), static_cast<unsigned int>(blocks),
                   threads, 0, stream)(
            a, ch0, nch, static_cast<const T*>(means2d), static_cast<const T*>(conics),
            static_cast<const T*>(colors), static_cast<const T*>(opacities), tile_offsets, flatten_ids,
            static_cast<const T*>(render_alphas), last_ids, static_cast<const T*>(grad_colors),
            static_cast<const T*>(grad_alphas), static_cast<T*>(grad_means2d), static_cast<T*>(grad_conics),
            static_cast<T*>(grad_colors_out), static_cast<T*>(grad_opacities), static_cast<T*>(entry_grads));
      });
    });
  });
}

void reduce_entry_grads(FloatKind kind, const RasterArgs& a, const uint64_t* sorted_keys,
                        const int64_t* sorted_entries, const void* entry_grads, void* grad_means2d,
                        void* grad_conics, void* grad_colors_out, void* grad_opacities, cudaStream_t stream) {
  if (a.entries == 0) return;
  constexpr int kThreads = 256;
  dispatch_float_kind(kind, [&](auto zero) {
    using T = decltype(zero);
    PPT_LAUNCH(reduce_entry_grads_kernel<T>, blocks_for(a.entries, kThreads), kThreads, 0, stream)(
        a, sorted_keys, sorted_entries, static_cast<const T*>(entry_grads), static_cast<T*>(grad_means2d),
        static_cast<T*>(grad_conics), static_cast<T*>(grad_colors_out), static_cast<T*>(grad_opacities));
  });
}

}  // namespace raster_cuda
}  // namespace ppt
