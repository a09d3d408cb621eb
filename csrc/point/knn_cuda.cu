// CUDA brute-force kNN: one thread per query; the cloud's points stream through shared memory in
// tiles and each thread keeps its k best (distance, index) sorted in its output row.
#include <algorithm>

#include "point/point_cuda.h"
#include "ppt/cuda_float.cuh"
#include "ppt/cuda_launch.cuh"
#include "ppt/geometry.h"

namespace ppt::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 256;
constexpr int64_t kMaxGridY = 65535;

template <typename T>
__global__ void __launch_bounds__(kThreads) knn_kernel(const T* query, const T* points, int64_t m, int64_t n,
                                                       int64_t k, acc_t<T>* dist_all, int64_t* index_all) {
  using A = acc_t<T>;
  __shared__ A tile[3][kTile];
  const int64_t b = blockIdx.y;
  const int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const bool active = q < m;
  const T* cloud = points + b * n * 3;
  A qx = 0, qy = 0, qz = 0;
  if (active) {
    const T* qp = query + (b * m + q) * 3;
    qx = to_acc(qp[0]);
    qy = to_acc(qp[1]);
    qz = to_acc(qp[2]);
  }
  A* dist = dist_all + (b * m + q) * k;
  int64_t* index = index_all + (b * m + q) * k;
  int64_t count = 0;
  A worst = INFINITY;
  for (int64_t start = 0; start < n; start += kTile) {
    const int len = static_cast<int>(n - start < kTile ? n - start : kTile);
    __syncthreads();
    for (int t = threadIdx.x; t < len * 3; t += blockDim.x) tile[t % 3][t / 3] = to_acc(cloud[start * 3 + t]);
    __syncthreads();
    if (!active) continue;
    for (int t = 0; t < len; ++t) {
      const A d = squared_distance3(tile[0][t], tile[1][t], tile[2][t], qx, qy, qz);
      if (!(d < worst)) continue;  // equal distances keep the earlier (lower) index
      count = insert_sorted(dist, index, count, k, d, start + t);
      if (count == k) worst = dist[k - 1];
    }
  }
}

template <typename T>
__global__ void knn_backward_kernel(const T* grad, const T* query, const T* points, const int64_t* index,
                                    int64_t m, int64_t n, int64_t k, int64_t rows, acc_t<T>* grad_query,
                                    acc_t<T>* grad_points) {
  using A = acc_t<T>;
  for (int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; row < rows; row += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = row / m;
    A gq[3] = {0, 0, 0};
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = index[row * k + i];
      const A scale = 2 * to_acc(grad[row * k + i]);
      for (int a = 0; a < 3; ++a) {
        const A diff = to_acc(query[row * 3 + a]) - to_acc(points[(b * n + j) * 3 + a]);
        gq[a] += scale * diff;
        atomicAdd(&grad_points[(b * n + j) * 3 + a], -scale * diff);
      }
    }
    for (int a = 0; a < 3; ++a) grad_query[row * 3 + a] = gq[a];
  }
}

}  // namespace

void knn(FloatKind kind, const void* query, const void* points, int64_t batches, int64_t m,
         int64_t n, int64_t k, void* dist_acc, int64_t* index, cudaStream_t stream) {
  dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // Clouds go on grid.y, which CUDA caps at 65535: more clouds launch in slices.
    for (int64_t first = 0; first < batches; first += kMaxGridY) {
      const int64_t slice = std::min(kMaxGridY, batches - first);
      const dim3 blocks(static_cast<unsigned>((m + kThreads - 1) / kThreads), static_cast<unsigned>(slice));
      PPT_LAUNCH(knn_kernel<T>, blocks, kThreads, 0, stream)(
          static_cast<const T*>(query) + first * m * 3, static_cast<const T*>(points) + first * n * 3, m, n, k,
          static_cast<acc_t<T>*>(dist_acc) + first * m * k, index + first * m * k);
    }
  });
}

void knn_backward(FloatKind kind, const void* grad_dist2, const void* query, const void* points,
                  const int64_t* index, int64_t batches, int64_t m, int64_t n, int64_t k,
                  void* grad_query, void* grad_points_acc, cudaStream_t stream) {
  dispatch_float(kind, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t rows = batches * m;
    PPT_LAUNCH(knn_backward_kernel<T>, grid_size(rows, 256), 256, 0, stream)(
        static_cast<const T*>(grad_dist2), static_cast<const T*>(query), static_cast<const T*>(points), index,
        m, n, k, rows, static_cast<acc_t<T>*>(grad_query), static_cast<acc_t<T>*>(grad_points_acc));
  });
}

}  // namespace ppt::cuda
