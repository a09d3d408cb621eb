// CUDA space-filling-curve encode / decode (PTv3 serialization): one thread per point, the same
// formulas as the CPU loop (ppt/serialization.h).
#include "point/point_cuda.h"
#include "ppt/cuda_float.cuh"
#include "ppt/cuda_launch.cuh"
#include "ppt/serialization.h"

namespace ppt::cuda {
namespace {

constexpr int kThreads = 256;

template <typename Index>
__global__ void serialization_encode_kernel(const Index* grid, const int64_t* batch, int64_t n, int depth,
                                            SerializationCurve curve, bool transposed, int64_t* code) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    code[i] = serialization_code(grid[3 * i], grid[3 * i + 1], grid[3 * i + 2], batch ? batch[i] : 0, depth, curve,
                                 transposed);
  }
}

__global__ void serialization_decode_kernel(const int64_t* code, int64_t n, int depth, SerializationCurve curve,
                                            bool transposed, int64_t* grid, int64_t* batch) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    serialization_decode_one(code[i], depth, curve, transposed, grid + 3 * i, batch + i);
  }
}

}  // namespace

void serialization_encode(const void* grid, bool grid_is_int32, const int64_t* batch, int64_t n, int depth,
                          SerializationCurve curve, bool transposed, int64_t* code, cudaStream_t stream) {
  if (grid_is_int32) {
    PPT_LAUNCH(serialization_encode_kernel<int32_t>, grid_size(n, kThreads), kThreads, 0, stream)(
        static_cast<const int32_t*>(grid), batch, n, depth, curve, transposed, code);
  } else {
    PPT_LAUNCH(serialization_encode_kernel<int64_t>, grid_size(n, kThreads), kThreads, 0, stream)(
        static_cast<const int64_t*>(grid), batch, n, depth, curve, transposed, code);
  }
}

void serialization_decode(const int64_t* code, int64_t n, int depth, SerializationCurve curve, bool transposed,
                          int64_t* grid, int64_t* batch, cudaStream_t stream) {
  PPT_LAUNCH(serialization_decode_kernel, grid_size(n, kThreads), kThreads, 0, stream)(code, n, depth, curve,
                                                                                      transposed, grid, batch);
}

}  // namespace ppt::cuda
