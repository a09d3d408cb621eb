// CUDA sparse max / average pooling over a kernel map (ppt/sparse_pool.h for the update rules).
//
// One launch per kernel offset, in offset order, each thread owning one (pair, channel) element.
// The output rows of one offset's pairs are distinct (and its input rows, which the backward
// writes), so no two threads of a launch touch one element and every element is updated in offset
// order: results are deterministic without atomics.
#include <cuda_runtime.h>

#include "ppt/cuda_float.cuh"
#include "ppt/cuda_launch.cuh"
#include "ppt/sparse_pool.h"
#include "sparse/sparse_cuda.h"

namespace ppt {
namespace {

constexpr int kThreads = 256;

// Grid-stride loop over the count * channels elements of one offset's pairs: body(p, c).
template <typename Body>
__device__ __forceinline__ void for_each_pair_channel(int64_t count, int64_t channels, const Body& body) {
  const int64_t total = count * channels;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = t / channels;
    body(p, t - p * channels);
  }
}

// Runs launch(blocks, rows_a_k, rows_b_k, count_k) for each offset k with pairs, in offset order,
// where rows_a / rows_b are the first / second row of pairs (2, num_pairs).
template <typename Launch>
void for_each_offset(const int32_t* pairs, int64_t num_pairs, const int64_t* host_offsets, int64_t volume,
                     int64_t channels, const Launch& launch) {
  for (int64_t k = 0; k < volume; ++k) {
    const int64_t start = host_offsets[k], count = host_offsets[k + 1] - host_offsets[k];
    if (count == 0) continue;
    launch(cuda::grid_size(count * channels, kThreads), pairs + start, pairs + num_pairs + start, count);
  }
}

template <typename T>
__global__ void max_pool_offset_kernel(const T* __restrict__ features, const int32_t* __restrict__ in_rows,
                                       const int32_t* __restrict__ out_rows, int64_t count, int64_t channels,
                                       T* __restrict__ out, int32_t* __restrict__ argmax) {
  for_each_pair_channel(count, channels, [&](int64_t p, int64_t c) {
    const int32_t row = in_rows[p];
    const T value = features[static_cast<int64_t>(row) * channels + c];
    const int64_t slot = static_cast<int64_t>(out_rows[p]) * channels + c;
    if (max_pool_takes(cuda::to_acc(value), cuda::to_acc(out[slot]), argmax[slot] < 0)) {
      out[slot] = value;
      argmax[slot] = row;
    }
  });
}

// The terms the accumulating ops add, term(from_row, to_row, c, value) with value = src[from_row, c].
struct Identity {
  template <typename A>
  __device__ A operator()(int32_t, int32_t, int64_t, A value) const { return value; }
};
// Max-pool backward (from an output row to an input row): only where that input won.
struct IfWinner {
  const int32_t* argmax;
  int64_t channels;
  template <typename A>
  __device__ A operator()(int32_t out_row, int32_t in_row, int64_t c, A grad) const {
    return argmax[static_cast<int64_t>(out_row) * channels + c] == in_row ? grad : A(0);
  }
};
// Average-pool backward (from an output row to an input row): divided by the output's pair count.
struct OverCount {
  const int64_t* counts;
  template <typename A>
  __device__ A operator()(int32_t out_row, int32_t, int64_t, A grad) const {
    return grad / static_cast<A>(counts[out_row]);
  }
};

// dst[to_rows[p], c] += term(from_rows[p], to_rows[p], c, src[from_rows[p], c]) for one offset.
template <typename T, typename Term>
__global__ void accumulate_offset_kernel(const T* __restrict__ src, const int32_t* __restrict__ from_rows,
                                         const int32_t* __restrict__ to_rows, int64_t count, int64_t channels,
                                         Term term, cuda::acc_t<T>* __restrict__ dst) {
  for_each_pair_channel(count, channels, [&](int64_t p, int64_t c) {
    const int32_t from = from_rows[p], to = to_rows[p];
    dst[static_cast<int64_t>(to) * channels + c] +=
        term(from, to, c, cuda::to_acc(src[static_cast<int64_t>(from) * channels + c]));
  });
}

// Accumulates over every offset's pairs read forwards (input -> output rows) or backwards.
template <typename Term>
void accumulate_pairs(const void* src, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                      const int64_t* host_offsets, int64_t volume, int64_t channels, bool backwards, Term term,
                      void* dst, cudaStream_t stream) {
  if (channels == 0) return;
  cuda::dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_offset(pairs, num_pairs, host_offsets, volume, channels,
                    [&](unsigned blocks, const int32_t* in_rows, const int32_t* out_rows, int64_t count) {
                      PPT_LAUNCH((accumulate_offset_kernel<T, Term>), blocks, kThreads, 0, stream)(
                          static_cast<const T*>(src), backwards ? out_rows : in_rows, backwards ? in_rows : out_rows,
                          count, channels, term, static_cast<cuda::acc_t<T>*>(dst));
                    });
  });
}

}  // namespace

void launch_sparse_max_pool(const void* features, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                            const int64_t* host_offsets, int64_t volume, int64_t channels, void* out,
                            int32_t* argmax, cudaStream_t stream) {
  if (channels == 0) return;
  cuda::dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_offset(pairs, num_pairs, host_offsets, volume, channels,
                    [&](unsigned blocks, const int32_t* in_rows, const int32_t* out_rows, int64_t count) {
                      PPT_LAUNCH(max_pool_offset_kernel<T>, blocks, kThreads, 0, stream)(
                          static_cast<const T*>(features), in_rows, out_rows, count, channels, static_cast<T*>(out),
                          argmax);
                    });
  });
}

void launch_sparse_max_pool_backward(const void* grad_out, FloatKind kind, const int32_t* argmax,
                                     const int32_t* pairs, int64_t num_pairs, const int64_t* host_offsets,
                                     int64_t volume, int64_t channels, void* grad_in, cudaStream_t stream) {
  accumulate_pairs(grad_out, kind, pairs, num_pairs, host_offsets, volume, channels, true, IfWinner{argmax, channels},
                   grad_in, stream);
}

void launch_sparse_pool_sums(const void* features, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                             const int64_t* host_offsets, int64_t volume, int64_t channels, void* sums,
                             cudaStream_t stream) {
  accumulate_pairs(features, kind, pairs, num_pairs, host_offsets, volume, channels, false, Identity{}, sums, stream);
}

void launch_sparse_avg_pool_backward(const void* grad_out, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                                     const int64_t* host_offsets, int64_t volume, int64_t channels,
                                     const int64_t* counts, void* grad_in, cudaStream_t stream) {
  accumulate_pairs(grad_out, kind, pairs, num_pairs, host_offsets, volume, channels, true, OverCount{counts}, grad_in,
                   stream);
}

}  // namespace ppt
