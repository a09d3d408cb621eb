// CUDA sparse max / average pooling over a kernel map (ppt/sparse_pool.h for the update rules).
//
// One launch per kernel offset, in offset order, each thread owning one (pair, channel) element.
// The output rows of one offset's pairs are distinct (and its input rows, which the backward
// writes), so no two threads of a launch touch one element and every element is updated in offset
// order: results are deterministic without float atomics. Only the pair counts of average pooling
// use atomics, on integers, which are exact.
#include <cuda_runtime.h>

#include "ppt/cuda_float.cuh"
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

template <typename T>
__global__ void max_pool_backward_offset_kernel(const T* __restrict__ grad_out, const int32_t* __restrict__ argmax,
                                                const int32_t* __restrict__ in_rows,
                                                const int32_t* __restrict__ out_rows, int64_t count,
                                                int64_t channels, cuda::acc_t<T>* __restrict__ grad_in) {
  for_each_pair_channel(count, channels, [&](int64_t p, int64_t c) {
    const int32_t row = in_rows[p];
    const int64_t from = static_cast<int64_t>(out_rows[p]) * channels + c;
    if (argmax[from] == row) grad_in[static_cast<int64_t>(row) * channels + c] += cuda::to_acc(grad_out[from]);
  });
}

__global__ void count_pairs_kernel(const int32_t* __restrict__ out_rows, int64_t num_pairs, int32_t* __restrict__ counts) {
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < num_pairs;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    atomicAdd(counts + out_rows[p], 1);
  }
}

template <typename T>
__global__ void sum_pool_offset_kernel(const T* __restrict__ features, const int32_t* __restrict__ in_rows,
                                       const int32_t* __restrict__ out_rows, int64_t count, int64_t channels,
                                       cuda::acc_t<T>* __restrict__ sums) {
  for_each_pair_channel(count, channels, [&](int64_t p, int64_t c) {
    sums[static_cast<int64_t>(out_rows[p]) * channels + c] +=
        cuda::to_acc(features[static_cast<int64_t>(in_rows[p]) * channels + c]);
  });
}

// sums[o, :] /= counts[o] where counts[o] > 0 (rows no pair reached stay 0).
template <typename A>
__global__ void divide_by_count_kernel(A* __restrict__ sums, const int32_t* __restrict__ counts, int64_t num_out,
                                       int64_t channels) {
  const int64_t total = num_out * channels;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t count = counts[t / channels];
    if (count > 0) sums[t] /= static_cast<A>(count);
  }
}

template <typename T>
__global__ void avg_pool_backward_offset_kernel(const T* __restrict__ grad_out, const int32_t* __restrict__ counts,
                                                const int32_t* __restrict__ in_rows,
                                                const int32_t* __restrict__ out_rows, int64_t count,
                                                int64_t channels, cuda::acc_t<T>* __restrict__ grad_in) {
  using A = cuda::acc_t<T>;
  for_each_pair_channel(count, channels, [&](int64_t p, int64_t c) {
    const int32_t out_row = out_rows[p];
    grad_in[static_cast<int64_t>(in_rows[p]) * channels + c] +=
        cuda::to_acc(grad_out[static_cast<int64_t>(out_row) * channels + c]) / static_cast<A>(counts[out_row]);
  });
}

// Launches kernel(in_rows_k, out_rows_k, count_k) for each offset k with pairs, in offset order.
template <typename Launch>
void for_each_offset(const int32_t* pairs, int64_t num_pairs, const int64_t* host_offsets, int64_t volume,
                     int64_t channels, const Launch& launch) {
  for (int64_t k = 0; k < volume; ++k) {
    const int64_t start = host_offsets[k], count = host_offsets[k + 1] - host_offsets[k];
    if (count == 0) continue;
    launch(cuda::grid_size(count * channels, kThreads), pairs + start, pairs + num_pairs + start, count);
  }
}

void count_pairs(const int32_t* pairs, int64_t num_pairs, int32_t* counts, cudaStream_t stream) {
  if (num_pairs == 0) return;
  count_pairs_kernel<<<cuda::grid_size(num_pairs, kThreads), kThreads, 0, stream>>>(pairs + num_pairs, num_pairs,
                                                                                      counts);
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
                      max_pool_offset_kernel<T><<<blocks, kThreads, 0, stream>>>(
                          static_cast<const T*>(features), in_rows, out_rows, count, channels, static_cast<T*>(out),
                          argmax);
                    });
  });
}

void launch_sparse_max_pool_backward(const void* grad_out, FloatKind kind, const int32_t* argmax,
                                     const int32_t* pairs, int64_t num_pairs, const int64_t* host_offsets,
                                     int64_t volume, int64_t channels, void* grad_in, cudaStream_t stream) {
  if (channels == 0) return;
  cuda::dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_offset(pairs, num_pairs, host_offsets, volume, channels,
                    [&](unsigned blocks, const int32_t* in_rows, const int32_t* out_rows, int64_t count) {
                      max_pool_backward_offset_kernel<T><<<blocks, kThreads, 0, stream>>>(
                          static_cast<const T*>(grad_out), argmax, in_rows, out_rows, count, channels,
                          static_cast<cuda::acc_t<T>*>(grad_in));
                    });
  });
}

void launch_sparse_avg_pool(const void* features, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                            const int64_t* host_offsets, int64_t volume, int64_t channels, int64_t num_out,
                            int32_t* counts, void* sums, cudaStream_t stream) {
  if (channels == 0 || num_out == 0) return;
  count_pairs(pairs, num_pairs, counts, stream);
  cuda::dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = cuda::acc_t<T>;
    for_each_offset(pairs, num_pairs, host_offsets, volume, channels,
                    [&](unsigned blocks, const int32_t* in_rows, const int32_t* out_rows, int64_t count) {
                      sum_pool_offset_kernel<T><<<blocks, kThreads, 0, stream>>>(
                          static_cast<const T*>(features), in_rows, out_rows, count, channels, static_cast<A*>(sums));
                    });
    divide_by_count_kernel<A><<<cuda::grid_size(num_out * channels, kThreads), kThreads, 0, stream>>>(
        static_cast<A*>(sums), counts, num_out, channels);
  });
}

void launch_sparse_avg_pool_backward(const void* grad_out, FloatKind kind, const int32_t* pairs, int64_t num_pairs,
                                     const int64_t* host_offsets, int64_t volume, int64_t channels, int32_t* counts,
                                     void* grad_in, cudaStream_t stream) {
  if (channels == 0) return;
  count_pairs(pairs, num_pairs, counts, stream);
  cuda::dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_offset(pairs, num_pairs, host_offsets, volume, channels,
                    [&](unsigned blocks, const int32_t* in_rows, const int32_t* out_rows, int64_t count) {
                      avg_pool_backward_offset_kernel<T><<<blocks, kThreads, 0, stream>>>(
                          static_cast<const T*>(grad_out), counts, in_rows, out_rows, count, channels,
                          static_cast<cuda::acc_t<T>*>(grad_in));
                    });
  });
}

}  // namespace ppt
