// CUDA kernels of segmented batch norm.
//
// Reductions (statistics forward, sums backward) run in two deterministic stages:
//  1. a block owns a chunk of rows and 32 channels (one per lane); each warp walks its share of
//     the chunk's rows once and accumulates every (segment, lane) in shared memory (each lane owns
//     its column, so no atomics). Moments are summed per run of equal segment ids as shifted sums
//     about the run's first value and Chan-merged; the block's warps are then Chan-merged in warp
//     order and the chunk's partials written to a workspace;
//  2. a block per (segment, 32 channels) merges the chunks' partials in a fixed order.
// Element-wise kernels (apply, input gradient) gather the (segment, channel) tables, which are
// small enough to stay in L1/L2. Channel tiles go on grid.x (up to 2^31 - 1 blocks): grid.y, capped
// at 65535, holds the chunks (at most kMaxPartialSlots) or segments.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "norm/norm_cuda.h"
#include "ppt/cuda_float.cuh"
#include "ppt/cuda_launch.cuh"
#include "ppt/segment_norm.h"

namespace ppt {
namespace {

constexpr int kLanes = 32;            // channels per block
constexpr int kMaxWarps = 4;          // warps per block of the chunk kernels
constexpr int kRowsPerWarp = 256;     // rows one warp accumulates before the block merge
constexpr int kUnroll = 4;            // rows whose loads a warp issues before using them
constexpr int kFinalizeRows = 32;     // warps splitting the chunks in the finalize kernels
constexpr size_t kSharedBudget = 48 * 1024;
constexpr int64_t kMaxPartialSlots = 16384;  // bound on num_chunks * num_segments (workspace size)
constexpr int kRowsPerElementBlock = 8;  // warps (rows in flight) per block of the element-wise kernels
constexpr int64_t kMaxElementBlocks = int64_t(1) << 20;

template <typename scalar_t>
__device__ __forceinline__ scalar_t from_acc(float v);
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ float from_acc<float>(float v) { return v; }
__device__ __forceinline__ double from_acc_double(double v) { return v; }

template <typename scalar_t, typename acc_t>
__device__ __forceinline__ scalar_t store_value(acc_t v) {
  if constexpr (sizeof(acc_t) == sizeof(double)) {
    return from_acc_double(v);
  } else {
    return from_acc<scalar_t>(v);
  }
}

size_t align_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

// How the rows are cut into chunks for one reduction kernel.
struct ChunkPlan {
  int warps;
  int64_t rows_per_warp;
  int64_t num_chunks;
  int64_t channel_tiles;
  size_t shared_bytes;
};

ChunkPlan make_plan(int64_t n, int64_t channels, int64_t num_segments, size_t bytes_per_warp_and_segment) {
  ChunkPlan plan;
  const size_t per_warp = bytes_per_warp_and_segment * static_cast<size_t>(num_segments);
  plan.warps = static_cast<int>(std::min<size_t>(kMaxWarps, std::max<size_t>(1, kSharedBudget / per_warp)));
  const int64_t max_chunks = std::max<int64_t>(1, kMaxPartialSlots / num_segments);
  const int64_t min_rows_per_warp = (n + max_chunks * plan.warps - 1) / (max_chunks * plan.warps);
  plan.rows_per_warp = std::max<int64_t>(kRowsPerWarp, min_rows_per_warp);
  const int64_t chunk_rows = plan.rows_per_warp * plan.warps;
  plan.num_chunks = std::max<int64_t>(1, (n + chunk_rows - 1) / chunk_rows);
  plan.channel_tiles = (channels + kLanes - 1) / kLanes;
  plan.shared_bytes = per_warp * plan.warps;
  return plan;
}

template <typename acc_t>
constexpr size_t stats_bytes_per_warp_and_segment() {
  return kLanes * (2 * sizeof(acc_t) + sizeof(int));
}

template <typename acc_t>
constexpr size_t reduce_bytes_per_warp_and_segment() {
  return kLanes * 2 * sizeof(acc_t);
}

// Workspace of the moments: int partial counts, then acc_t partial means and M2s.
template <typename acc_t>
struct StatsWorkspace {
  int* count;
  acc_t* mean;
  acc_t* m2;
  static size_t bytes(const ChunkPlan& plan, int64_t channels, int64_t num_segments) {
    const size_t slots = static_cast<size_t>(plan.num_chunks * num_segments);
    return align_up(slots * sizeof(int)) + 2 * align_up(slots * channels * sizeof(acc_t));
  }
  StatsWorkspace(void* base, const ChunkPlan& plan, int64_t channels, int64_t num_segments) {
    const size_t slots = static_cast<size_t>(plan.num_chunks * num_segments);
    char* p = static_cast<char*>(base);
    count = reinterpret_cast<int*>(p);
    p += align_up(slots * sizeof(int));
    mean = reinterpret_cast<acc_t*>(p);
    p += align_up(slots * channels * sizeof(acc_t));
    m2 = reinterpret_cast<acc_t*>(p);
  }
};

template <typename acc_t>
struct ReduceWorkspace {
  acc_t* dy;
  acc_t* dy_xmu;
  static size_t bytes(const ChunkPlan& plan, int64_t channels, int64_t num_segments) {
    return 2 * align_up(static_cast<size_t>(plan.num_chunks * num_segments * channels) * sizeof(acc_t));
  }
  ReduceWorkspace(void* base, const ChunkPlan& plan, int64_t channels, int64_t num_segments) {
    dy = static_cast<acc_t*>(base);
    dy_xmu = reinterpret_cast<acc_t*>(static_cast<char*>(base) +
                                      align_up(static_cast<size_t>(plan.num_chunks * num_segments * channels) * sizeof(acc_t)));
  }
};

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kLanes * kMaxWarps)
stats_chunk_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ segment,
                   int64_t n, int64_t channels, int64_t num_segments, int64_t rows_per_warp,
                   int* __restrict__ partial_count, acc_t* __restrict__ partial_mean,
                   acc_t* __restrict__ partial_m2) {
  PPT_DYNAMIC_SHARED(unsigned char, shared_raw);
  const int lane = threadIdx.x, warp = threadIdx.y, warps = blockDim.y;
  const int64_t slots = static_cast<int64_t>(warps) * num_segments * kLanes;
  acc_t* mean = reinterpret_cast<acc_t*>(shared_raw);
  acc_t* m2 = mean + slots;
  int* count = reinterpret_cast<int*>(m2 + slots);
  auto slot = [&](int w, int64_t s) { return (w * num_segments + s) * kLanes + lane; };
  for (int64_t s = 0; s < num_segments; ++s) {
    mean[slot(warp, s)] = acc_t(0);
    m2[slot(warp, s)] = acc_t(0);
    count[slot(warp, s)] = 0;
  }
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kLanes + lane;
  const bool active = c < channels;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = (chunk * warps + warp) * rows_per_warp;
  const int64_t r1 = min(n, r0 + rows_per_warp);
  // Single pass over x (a second pass would re-read it from DRAM): a run of rows of one segment
  // (scenes are concatenated, so runs are long) is summed in registers as shifted sums about its
  // first value, which keeps E[d^2] - E[d]^2 well conditioned, and Chan-merged into the warp's
  // shared-memory moments when the segment changes. The id is the same for the whole warp, so
  // the run logic never diverges. kUnroll rows are loaded before use to keep loads in flight.
  int64_t run_segment = -1;
  int run_count = 0;
  acc_t shift = 0, sum_d = 0, sum_d2 = 0;
  auto flush_run = [&]() {
    if (run_count == 0) return;
    const int64_t k = slot(warp, run_segment);
    const acc_t rows = static_cast<acc_t>(run_count);
    const acc_t mean_d = sum_d / rows;
    Moments<acc_t> merged{static_cast<acc_t>(count[k]), mean[k], m2[k]};
    chan_merge(merged, rows, shift + mean_d, max(acc_t(0), sum_d2 - sum_d * mean_d));
    count[k] += run_count;
    mean[k] = merged.mean;
    m2[k] = merged.m2;
  };
  for (int64_t r = r0; r < r1; r += kUnroll) {
    int64_t ids[kUnroll];
    acc_t values[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t row = r + u;
      ids[u] = row < r1 ? segment[row] : -1;
      values[u] = (active && row < r1) ? cuda::to_acc(x[row * channels + c]) : acc_t(0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (ids[u] < 0) continue;
      if (ids[u] != run_segment) {
        flush_run();
        run_segment = ids[u];
        run_count = 0;
        shift = values[u];
        sum_d = 0;
        sum_d2 = 0;
      }
      const acc_t d = values[u] - shift;
      sum_d += d;
      sum_d2 += d * d;
      ++run_count;
    }
  }
  flush_run();
  __syncthreads();
  if (warp != 0) return;
  for (int64_t s = 0; s < num_segments; ++s) {
    Moments<acc_t> total{acc_t(0), acc_t(0), acc_t(0)};
    int rows = 0;
    for (int w = 0; w < warps; ++w) {
      const int64_t k = slot(w, s);
      chan_merge(total, static_cast<acc_t>(count[k]), mean[k], m2[k]);
      rows += count[k];
    }
    const int64_t out = chunk * num_segments + s;
    if (active) {
      partial_mean[out * channels + c] = total.mean;
      partial_m2[out * channels + c] = total.m2;
    }
    if (blockIdx.x == 0 && lane == 0) partial_count[out] = rows;
  }
}

template <typename acc_t>
__global__ void __launch_bounds__(kLanes * kFinalizeRows)
stats_finalize_kernel(const int* __restrict__ partial_count, const acc_t* __restrict__ partial_mean,
                      const acc_t* __restrict__ partial_m2, int64_t num_chunks, int64_t channels,
                      int64_t num_segments, int64_t* __restrict__ count, acc_t* __restrict__ mean,
                      acc_t* __restrict__ m2) {
  __shared__ acc_t shared_count[kFinalizeRows][kLanes];
  __shared__ acc_t shared_mean[kFinalizeRows][kLanes];
  __shared__ acc_t shared_m2[kFinalizeRows][kLanes];
  __shared__ long long shared_rows[kFinalizeRows];
  const int lane = threadIdx.x, row = threadIdx.y;
  const int64_t s = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kLanes + lane;
  const bool active = c < channels;
  Moments<acc_t> total{acc_t(0), acc_t(0), acc_t(0)};
  long long rows = 0;
  for (int64_t chunk = row; chunk < num_chunks; chunk += kFinalizeRows) {
    const int64_t slot = chunk * num_segments + s;
    const int chunk_count = partial_count[slot];
    rows += chunk_count;
    if (active) chan_merge(total, static_cast<acc_t>(chunk_count), partial_mean[slot * channels + c], partial_m2[slot * channels + c]);
  }
  shared_count[row][lane] = total.count;
  shared_mean[row][lane] = total.mean;
  shared_m2[row][lane] = total.m2;
  if (lane == 0) shared_rows[row] = rows;
  __syncthreads();
  if (row != 0) return;
  Moments<acc_t> merged{acc_t(0), acc_t(0), acc_t(0)};
  long long all_rows = 0;
  for (int r = 0; r < kFinalizeRows; ++r) {
    chan_merge(merged, shared_count[r][lane], shared_mean[r][lane], shared_m2[r][lane]);
    all_rows += shared_rows[r];
  }
  if (active) {
    mean[s * channels + c] = merged.mean;
    m2[s * channels + c] = merged.m2;
  }
  if (blockIdx.x == 0 && lane == 0) count[s] = all_rows;
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kLanes * kMaxWarps)
reduce_chunk_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                    const int64_t* __restrict__ segment, int64_t n, int64_t channels,
                    int64_t num_segments, int64_t rows_per_warp, const acc_t* __restrict__ mean,
                    acc_t* __restrict__ partial_dy, acc_t* __restrict__ partial_dy_xmu) {
  PPT_DYNAMIC_SHARED(unsigned char, shared_raw);
  const int lane = threadIdx.x, warp = threadIdx.y, warps = blockDim.y;
  const int64_t slots = static_cast<int64_t>(warps) * num_segments * kLanes;
  acc_t* sum_dy = reinterpret_cast<acc_t*>(shared_raw);
  acc_t* sum_dy_xmu = sum_dy + slots;
  auto slot = [&](int w, int64_t s) { return (w * num_segments + s) * kLanes + lane; };
  for (int64_t s = 0; s < num_segments; ++s) {
    sum_dy[slot(warp, s)] = acc_t(0);
    sum_dy_xmu[slot(warp, s)] = acc_t(0);
  }
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kLanes + lane;
  const bool active = c < channels;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = (chunk * warps + warp) * rows_per_warp;
  const int64_t r1 = min(n, r0 + rows_per_warp);
  if (active) {  // run-length register sums with kUnroll rows in flight, as in stats_chunk_kernel
    int64_t run_segment = -1;
    acc_t run_mean = 0, run_dy = 0, run_dy_xmu = 0;
    auto flush_run = [&]() {
      if (run_segment < 0) return;
      sum_dy[slot(warp, run_segment)] += run_dy;
      sum_dy_xmu[slot(warp, run_segment)] += run_dy_xmu;
    };
    for (int64_t r = r0; r < r1; r += kUnroll) {
      int64_t ids[kUnroll];
      acc_t dys[kUnroll], xs[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t row = r + u;
        const bool inside = row < r1;
        ids[u] = inside ? segment[row] : -1;
        dys[u] = inside ? cuda::to_acc(grad_out[row * channels + c]) : acc_t(0);
        xs[u] = inside ? cuda::to_acc(x[row * channels + c]) : acc_t(0);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (ids[u] < 0) continue;
        if (ids[u] != run_segment) {
          flush_run();
          run_segment = ids[u];
          run_mean = mean[run_segment * channels + c];
          run_dy = 0;
          run_dy_xmu = 0;
        }
        run_dy += dys[u];
        run_dy_xmu += dys[u] * (xs[u] - run_mean);
      }
    }
    flush_run();
  }
  __syncthreads();
  if (warp != 0 || !active) return;
  for (int64_t s = 0; s < num_segments; ++s) {
    acc_t dy = 0, dy_xmu = 0;
    for (int w = 0; w < warps; ++w) {
      dy += sum_dy[slot(w, s)];
      dy_xmu += sum_dy_xmu[slot(w, s)];
    }
    const int64_t out = (chunk * num_segments + s) * channels + c;
    partial_dy[out] = dy;
    partial_dy_xmu[out] = dy_xmu;
  }
}

template <typename acc_t>
__global__ void __launch_bounds__(kLanes * kFinalizeRows)
reduce_finalize_kernel(const acc_t* __restrict__ partial_dy, const acc_t* __restrict__ partial_dy_xmu,
                       int64_t num_chunks, int64_t channels, int64_t num_segments,
                       const acc_t* __restrict__ invstd, acc_t* __restrict__ sum_dy,
                       acc_t* __restrict__ sum_dy_xhat) {
  __shared__ acc_t shared_dy[kFinalizeRows][kLanes];
  __shared__ acc_t shared_dy_xmu[kFinalizeRows][kLanes];
  const int lane = threadIdx.x, row = threadIdx.y;
  const int64_t s = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kLanes + lane;
  const bool active = c < channels;
  acc_t dy = 0, dy_xmu = 0;
  if (active) {
    for (int64_t chunk = row; chunk < num_chunks; chunk += kFinalizeRows) {
      const int64_t k = (chunk * num_segments + s) * channels + c;
      dy += partial_dy[k];
      dy_xmu += partial_dy_xmu[k];
    }
  }
  shared_dy[row][lane] = dy;
  shared_dy_xmu[row][lane] = dy_xmu;
  __syncthreads();
  if (row != 0 || !active) return;
  acc_t total_dy = 0, total_dy_xmu = 0;
  for (int r = 0; r < kFinalizeRows; ++r) {
    total_dy += shared_dy[r][lane];
    total_dy_xmu += shared_dy_xmu[r][lane];
  }
  sum_dy[s * channels + c] = total_dy;
  sum_dy_xhat[s * channels + c] = total_dy_xmu * invstd[s * channels + c];
}

// Element-wise kernels: one warp per row (grid-stride over rows), lanes stride over the channels,
// so loads are coalesced and no per-element index division is needed.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kLanes * kRowsPerElementBlock)
apply_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ segment, int64_t n, int64_t channels,
             const acc_t* __restrict__ mean, const acc_t* __restrict__ invstd, const acc_t* __restrict__ weight,
             const acc_t* __restrict__ bias, scalar_t* __restrict__ y) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < n; r += stride) {
    const int64_t table_row = segment[r] * channels;
#pragma unroll 4
    for (int64_t c = threadIdx.x; c < channels; c += kLanes) {
      const int64_t e = r * channels + c, k = table_row + c;
      y[e] = store_value<scalar_t>(normalize_affine(cuda::to_acc(x[e]), mean[k], invstd[k], weight[k], bias[k]));
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kLanes * kRowsPerElementBlock)
input_grad_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                  const int64_t* __restrict__ segment, int64_t n, int64_t channels, const acc_t* __restrict__ mean,
                  const acc_t* __restrict__ invstd, const acc_t* __restrict__ weight,
                  const acc_t* __restrict__ mean_dy, const acc_t* __restrict__ mean_dy_xhat,
                  scalar_t* __restrict__ grad_x) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < n; r += stride) {
    const int64_t table_row = segment[r] * channels;
#pragma unroll 4
    for (int64_t c = threadIdx.x; c < channels; c += kLanes) {
      const int64_t e = r * channels + c, k = table_row + c;
      grad_x[e] = store_value<scalar_t>(batch_norm_input_grad(cuda::to_acc(grad_out[e]), cuda::to_acc(x[e]), mean[k], invstd[k],
                                                              weight[k], mean_dy[k], mean_dy_xhat[k]));
    }
  }
}

dim3 element_grid(int64_t n) {
  return dim3(static_cast<unsigned int>(std::min<int64_t>(kMaxElementBlocks, (n + kRowsPerElementBlock - 1) / kRowsPerElementBlock)));
}

}  // namespace

int64_t segment_bn_cuda_max_segments(FloatKind kind) {
  const size_t per_segment = kind == FloatKind::kDouble ? stats_bytes_per_warp_and_segment<double>()
                                                        : stats_bytes_per_warp_and_segment<float>();
  return static_cast<int64_t>(kSharedBudget / per_segment);  // one warp per block at the limit
}

size_t segment_bn_stats_workspace_bytes(FloatKind kind, int64_t n, int64_t channels, int64_t num_segments) {
  if (kind == FloatKind::kDouble) {
    return StatsWorkspace<double>::bytes(make_plan(n, channels, num_segments, stats_bytes_per_warp_and_segment<double>()),
                                         channels, num_segments);
  }
  return StatsWorkspace<float>::bytes(make_plan(n, channels, num_segments, stats_bytes_per_warp_and_segment<float>()),
                                      channels, num_segments);
}

size_t segment_bn_backward_reduce_workspace_bytes(FloatKind kind, int64_t n, int64_t channels, int64_t num_segments) {
  if (kind == FloatKind::kDouble) {
    return ReduceWorkspace<double>::bytes(make_plan(n, channels, num_segments, reduce_bytes_per_warp_and_segment<double>()),
                                          channels, num_segments);
  }
  return ReduceWorkspace<float>::bytes(make_plan(n, channels, num_segments, reduce_bytes_per_warp_and_segment<float>()),
                                       channels, num_segments);
}

cudaError_t segment_bn_stats_cuda(FloatKind kind, const void* x, const int64_t* segment, int64_t n, int64_t channels,
                                  int64_t num_segments, void* workspace, int64_t* count, void* mean, void* m2,
                                  cudaStream_t stream) {
  return cuda::dispatch_float(kind, [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using acc_t = cuda::acc_t<scalar_t>;
    const ChunkPlan plan = make_plan(n, channels, num_segments, stats_bytes_per_warp_and_segment<acc_t>());
    StatsWorkspace<acc_t> ws(workspace, plan, channels, num_segments);
    PPT_LAUNCH((stats_chunk_kernel<scalar_t, acc_t>), dim3(plan.channel_tiles, plan.num_chunks), dim3(kLanes, plan.warps), plan.shared_bytes, stream)(
            static_cast<const scalar_t*>(x), segment, n, channels, num_segments, plan.rows_per_warp, ws.count,
            ws.mean, ws.m2);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    PPT_LAUNCH(stats_finalize_kernel<acc_t>, dim3(plan.channel_tiles, num_segments), dim3(kLanes, kFinalizeRows), 0, stream)(
        ws.count, ws.mean, ws.m2, plan.num_chunks, channels, num_segments, count, static_cast<acc_t*>(mean),
        static_cast<acc_t*>(m2));
    return cudaGetLastError();
  });
}

cudaError_t segment_bn_apply_cuda(FloatKind kind, const void* x, const int64_t* segment, int64_t n, int64_t channels,
                                  const void* mean, const void* invstd, const void* weight, const void* bias, void* y,
                                  cudaStream_t stream) {
  return cuda::dispatch_float(kind, [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using acc_t = cuda::acc_t<scalar_t>;
    PPT_LAUNCH((apply_kernel<scalar_t, acc_t>), element_grid(n), dim3(kLanes, kRowsPerElementBlock), 0, stream)(
        static_cast<const scalar_t*>(x), segment, n, channels, static_cast<const acc_t*>(mean),
        static_cast<const acc_t*>(invstd), static_cast<const acc_t*>(weight), static_cast<const acc_t*>(bias),
        static_cast<scalar_t*>(y));
    return cudaGetLastError();
  });
}

cudaError_t segment_bn_backward_reduce_cuda(FloatKind kind, const void* grad_out, const void* x, const int64_t* segment,
                                            int64_t n, int64_t channels, int64_t num_segments, const void* mean,
                                            const void* invstd, void* workspace, void* sum_dy, void* sum_dy_xhat,
                                            cudaStream_t stream) {
  return cuda::dispatch_float(kind, [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using acc_t = cuda::acc_t<scalar_t>;
    const ChunkPlan plan = make_plan(n, channels, num_segments, reduce_bytes_per_warp_and_segment<acc_t>());
    ReduceWorkspace<acc_t> ws(workspace, plan, channels, num_segments);
    PPT_LAUNCH((reduce_chunk_kernel<scalar_t, acc_t>), dim3(plan.channel_tiles, plan.num_chunks), dim3(kLanes, plan.warps), plan.shared_bytes, stream)(
            static_cast<const scalar_t*>(grad_out), static_cast<const scalar_t*>(x), segment, n, channels,
            num_segments, plan.rows_per_warp, static_cast<const acc_t*>(mean), ws.dy, ws.dy_xmu);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    PPT_LAUNCH(reduce_finalize_kernel<acc_t>, dim3(plan.channel_tiles, num_segments), dim3(kLanes, kFinalizeRows), 0, stream)(
        ws.dy, ws.dy_xmu, plan.num_chunks, channels, num_segments, static_cast<const acc_t*>(invstd),
        static_cast<acc_t*>(sum_dy), static_cast<acc_t*>(sum_dy_xhat));
    return cudaGetLastError();
  });
}

cudaError_t segment_bn_backward_cuda(FloatKind kind, const void* grad_out, const void* x, const int64_t* segment,
                                     int64_t n, int64_t channels, const void* mean, const void* invstd,
                                     const void* weight, const void* mean_dy, const void* mean_dy_xhat, void* grad_x,
                                     cudaStream_t stream) {
  return cuda::dispatch_float(kind, [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using acc_t = cuda::acc_t<scalar_t>;
    PPT_LAUNCH((input_grad_kernel<scalar_t, acc_t>), element_grid(n), dim3(kLanes, kRowsPerElementBlock), 0, stream)(
        static_cast<const scalar_t*>(grad_out), static_cast<const scalar_t*>(x), segment, n, channels,
        static_cast<const acc_t*>(mean), static_cast<const acc_t*>(invstd), static_cast<const acc_t*>(weight),
        static_cast<const acc_t*>(mean_dy), static_cast<const acc_t*>(mean_dy_xhat), static_cast<scalar_t*>(grad_x));
    return cudaGetLastError();
  });
}

}  // namespace ppt
