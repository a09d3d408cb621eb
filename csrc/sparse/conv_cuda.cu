// CUDA gather / scatter-add of feature rows for the gather-GEMM-scatter convolution (the GEMMs
// are cuBLAS through ATen, float32 accumulation for half inputs). Rows are moved with 16-byte
// vectors when the row width allows it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ppt/cuda_float.cuh"
#include "ppt/cuda_launch.cuh"
#include "sparse/sparse_cuda.h"

namespace ppt {
namespace {

constexpr int kThreads = 256;

int element_bytes(FloatKind kind) {
  switch (kind) {
    case FloatKind::kHalf:
    case FloatKind::kBFloat16:
      return 2;
    case FloatKind::kFloat:
      return 4;
    default:
      return 8;
  }
}

// Copies rows as `words` of type Word (channels * element bytes divisible by sizeof(Word)).
template <typename Word>
__global__ void gather_rows_kernel(const Word* __restrict__ src, const int32_t* __restrict__ rows, int64_t count,
                                   int64_t words_per_row, Word* __restrict__ dst) {
  const int64_t total = count * words_per_row;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = t / words_per_row, w = t - p * words_per_row;
    dst[t] = src[static_cast<int64_t>(rows[p]) * words_per_row + w];
  }
}

template <typename Word>
void gather_as(const void* src, const int32_t* rows, int64_t count, int64_t row_bytes, void* dst,
               cudaStream_t stream) {
  const int64_t words = row_bytes / static_cast<int64_t>(sizeof(Word));
  PPT_LAUNCH(gather_rows_kernel<Word>, cuda::grid_size(count * words, kThreads), kThreads, 0, stream)(
      static_cast<const Word*>(src), rows, count, words, static_cast<Word*>(dst));
}

__device__ __forceinline__ float to_accumulator(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_accumulator(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_accumulator(float v) { return v; }
__device__ __forceinline__ double to_accumulator(double v) { return v; }

template <typename Source, typename Accumulator>
__global__ void scatter_add_rows_kernel(const Source* __restrict__ src, const int32_t* __restrict__ rows,
                                        int64_t count, int64_t channels, Accumulator* __restrict__ dst) {
  const int64_t total = count * channels;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = t / channels, c = t - p * channels;
    dst[static_cast<int64_t>(rows[p]) * channels + c] += to_accumulator(src[t]);
  }
}

template <typename Source, typename Accumulator>
void scatter_as(const void* src, const int32_t* rows, int64_t count, int64_t channels, void* dst,
                cudaStream_t stream) {
  PPT_LAUNCH((scatter_add_rows_kernel<Source, Accumulator>), cuda::grid_size(count * channels, kThreads), kThreads, 0, stream)(
      static_cast<const Source*>(src), rows, count, channels, static_cast<Accumulator*>(dst));
}

}  // namespace

void launch_gather_rows(const void* src, FloatKind kind, const int32_t* rows, int64_t count, int64_t channels,
                        void* dst, cudaStream_t stream) {
  if (count == 0 || channels == 0) return;
  const int64_t row_bytes = channels * element_bytes(kind);
  const bool aligned16 = reinterpret_cast<uintptr_t>(src) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0;
  if (aligned16 && row_bytes % 16 == 0) {
    gather_as<int4>(src, rows, count, row_bytes, dst, stream);
  } else if (row_bytes % 4 == 0) {
    gather_as<int32_t>(src, rows, count, row_bytes, dst, stream);
  } else {
    gather_as<int16_t>(src, rows, count, row_bytes, dst, stream);
  }
}

void launch_scatter_add_rows(const void* src, FloatKind src_kind, const int32_t* rows, int64_t count,
                             int64_t channels, void* dst, cudaStream_t stream) {
  if (count == 0 || channels == 0) return;
  cuda::dispatch_float(src_kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    scatter_as<T, cuda::acc_t<T>>(src, rows, count, channels, dst, stream);
  });
}

}  // namespace ppt
