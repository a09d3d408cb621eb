// CUDA farthest point sampling: one block per cloud; each iteration updates the running minimum
// distances of the block's share of points and reduces (distance, index) to the first argmax.
#include <cfloat>

#include "point/point_cuda.h"
#include "ppt/cuda_float.cuh"
#include "ppt/cuda_launch.cuh"
#include "ppt/geometry.h"

namespace ppt::cuda {
namespace {

constexpr int kThreads = 512;

template <typename A>
__device__ __forceinline__ bool farther(A da, int64_t ia, A db, int64_t ib) {
  return da > db || (da == db && ia < ib);  // larger distance first, ties to the lower index
}

template <typename T>
__global__ void __launch_bounds__(kThreads) fps_kernel(const T* xyz, int64_t n, int64_t num_samples,
                                                       int64_t start_index, acc_t<T>* min_dist_all, int64_t* out_all) {
  using A = acc_t<T>;
  __shared__ A best_dist[kThreads];
  __shared__ int64_t best_index[kThreads];
  __shared__ A centre[3];
  const T* points = xyz + blockIdx.x * n * 3;
  A* min_dist = min_dist_all + blockIdx.x * n;
  int64_t* out = out_all + blockIdx.x * num_samples;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) min_dist[j] = INFINITY;
  int64_t last = start_index;
  for (int64_t s = 0; s < num_samples; ++s) {
    if (threadIdx.x == 0) {
      out[s] = last;
      for (int a = 0; a < 3; ++a) centre[a] = to_acc(points[3 * last + a]);
    }
    __syncthreads();
    if (s + 1 == num_samples) break;
    A my_dist = -1;
    int64_t my_index = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const A d = squared_distance3(to_acc(points[3 * j]), to_acc(points[3 * j + 1]), to_acc(points[3 * j + 2]),
                                    centre[0], centre[1], centre[2]);
      const A m = d < min_dist[j] ? d : min_dist[j];
      min_dist[j] = m;
      if (m > my_dist) {  // j increases per thread: strict > keeps the lowest index
        my_dist = m;
        my_index = j;
      }
    }
    best_dist[threadIdx.x] = my_dist;
    best_index[threadIdx.x] = my_index;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride &&
          farther(best_dist[threadIdx.x + stride], best_index[threadIdx.x + stride],
                  best_dist[threadIdx.x], best_index[threadIdx.x])) {
        best_dist[threadIdx.x] = best_dist[threadIdx.x + stride];
        best_index[threadIdx.x] = best_index[threadIdx.x + stride];
      }
      __syncthreads();
    }
    last = best_index[0];
    __syncthreads();  // everyone read best_index[0] before thread 0 reuses the shared arrays
  }
}

}  // namespace

void farthest_point_sample(FloatKind kind, const void* xyz, int64_t batches, int64_t n,
                           int64_t num_samples, int64_t start_index, void* min_dist, int64_t* out,
                           cudaStream_t stream) {
  dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    PPT_LAUNCH(fps_kernel<T>, static_cast<unsigned>(batches), kThreads, 0, stream)(
        static_cast<const T*>(xyz), n, num_samples, start_index, static_cast<acc_t<T>*>(min_dist), out);
  });
}

}  // namespace ppt::cuda
