// Argument validation of the point ops, shared by the CPU and CUDA implementations.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace ppt {

void check_voxelize_args(const at::Tensor& coord, double voxel_size,
                         const std::optional<at::Tensor>& batch);
void check_fps_args(const at::Tensor& xyz, int64_t num_samples, int64_t start_index);
void check_knn_args(const at::Tensor& query, const at::Tensor& points, int64_t k);
void check_knn_backward_args(const at::Tensor& grad_dist2, const at::Tensor& query,
                             const at::Tensor& points, const at::Tensor& index);

}  // namespace ppt
