// Launchers of the segmented batch-norm CUDA kernels. Torch-free: raw pointers, sizes, the
// element type as ppt::FloatKind and a stream, so the .cu compiles with plain nvcc.
//
// Statistic tables (mean, m2, invstd, weight, bias, sums) are (num_segments, C) row-major in the
// accumulation type (float for half/bfloat16/float inputs, double for double); x, y and grads are
// (N, C) row-major in the input type; segment is (N,) int64 with ids in [0, num_segments).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "ppt/common.h"

namespace ppt {

// The largest num_segments the per-block shared-memory accumulators hold for `kind`.
int64_t segment_bn_cuda_max_segments(FloatKind kind);

// Bytes of scratch memory segment_bn_stats_cuda / segment_bn_backward_reduce_cuda need.
size_t segment_bn_stats_workspace_bytes(FloatKind kind, int64_t n, int64_t channels, int64_t num_segments);
size_t segment_bn_backward_reduce_workspace_bytes(FloatKind kind, int64_t n, int64_t channels,
                                                  int64_t num_segments);

// count (S,) int64, mean and m2 (S, C): per-(segment, channel) moments.
cudaError_t segment_bn_stats_cuda(FloatKind kind, const void* x, const int64_t* segment, int64_t n,
                                  int64_t channels, int64_t num_segments, void* workspace,
                                  int64_t* count, void* mean, void* m2, cudaStream_t stream);

// y = (x - mean) * invstd * weight + bias, gathered per row's segment.
cudaError_t segment_bn_apply_cuda(FloatKind kind, const void* x, const int64_t* segment, int64_t n,
                                  int64_t channels, const void* mean, const void* invstd,
                                  const void* weight, const void* bias, void* y, cudaStream_t stream);

// sum_dy and sum_dy_xhat (S, C): per-(segment, channel) sums of dy and dy * x̂.
cudaError_t segment_bn_backward_reduce_cuda(FloatKind kind, const void* grad_out, const void* x,
                                            const int64_t* segment, int64_t n, int64_t channels,
                                            int64_t num_segments, const void* mean, const void* invstd,
                                            void* workspace, void* sum_dy, void* sum_dy_xhat,
                                            cudaStream_t stream);

// grad_x from dy, with the per-(segment, channel) projections mean_dy and mean_dy_xhat (zeros in eval).
cudaError_t segment_bn_backward_cuda(FloatKind kind, const void* grad_out, const void* x,
                                     const int64_t* segment, int64_t n, int64_t channels,
                                     const void* mean, const void* invstd, const void* weight,
                                     const void* mean_dy, const void* mean_dy_xhat, void* grad_x,
                                     cudaStream_t stream);

}  // namespace ppt
