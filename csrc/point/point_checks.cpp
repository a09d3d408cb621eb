#include "point/point_checks.h"

#include <cmath>

#include "ppt/tensor_checks.h"

namespace ppt {

void check_voxelize_args(const at::Tensor& coord, double voxel_size,
                         const std::optional<at::Tensor>& batch) {
  constexpr const char* op = "voxelize";
  check_floating(op, "coord", coord);
  check_dim(op, "coord", coord, 2, "(N, 3)");
  check_last_dim(op, "coord", coord, 3, "(N, 3)");
  TORCH_CHECK(std::isfinite(voxel_size) && voxel_size > 0, op,
              ": voxel_size must be a positive finite number, got ", voxel_size);
  if (batch.has_value()) {
    const at::Tensor& b = *batch;
    check_dtype(op, "batch", b, at::kLong);
    TORCH_CHECK(b.dim() == 1 && b.size(0) == coord.size(0), op,
                ": batch must have shape (N,) matching coord's N=", coord.size(0), ", got ",
                shape_string(b));
    check_same_device(op, "coord", coord, "batch", b);
  }
}

void check_fps_args(const at::Tensor& xyz, int64_t num_samples, int64_t start_index) {
  constexpr const char* op = "farthest_point_sample";
  check_floating(op, "xyz", xyz);
  check_dim(op, "xyz", xyz, 3, "(B, N, 3)");
  check_last_dim(op, "xyz", xyz, 3, "(B, N, 3)");
  const int64_t n = xyz.size(1);
  TORCH_CHECK(num_samples >= 0 && num_samples <= n, op, ": num_samples must be in [0, N] with N=",
              n, " points per cloud, got ", num_samples);
  TORCH_CHECK(num_samples == 0 || (start_index >= 0 && start_index < n), op,
              ": start_index must be in [0, N) with N=", n, ", got ", start_index);
  check_distance_coordinates(op, {{"xyz", &xyz}});
}

void check_knn_args(const at::Tensor& query, const at::Tensor& points, int64_t k) {
  constexpr const char* op = "knn";
  check_floating(op, "query", query);
  check_floating(op, "points", points);
  check_dim(op, "query", query, 3, "(B, M, 3)");
  check_last_dim(op, "query", query, 3, "(B, M, 3)");
  check_dim(op, "points", points, 3, "(B, N, 3)");
  check_last_dim(op, "points", points, 3, "(B, N, 3)");
  check_same_dtype(op, "query", query, "points", points);
  check_same_device(op, "query", query, "points", points);
  TORCH_CHECK(query.size(0) == points.size(0), op,
              ": query and points must have the same batch size B, got ", query.size(0), " and ",
              points.size(0));
  TORCH_CHECK(k >= 0 && k <= points.size(1), op, ": k must be in [0, N] with N=", points.size(1),
              " points per cloud, got k=", k);
  check_distance_coordinates(op, {{"query", &query}, {"points", &points}});
}

void check_knn_backward_args(const at::Tensor& grad_dist2, const at::Tensor& query,
                             const at::Tensor& points, const at::Tensor& index) {
  constexpr const char* op = "knn_backward";
  check_same_dtype(op, "grad_dist2", grad_dist2, "query", query);
  check_same_dtype(op, "query", query, "points", points);
  check_dtype(op, "index", index, at::kLong);
  check_same_device(op, "grad_dist2", grad_dist2, "query", query);
  check_same_device(op, "index", index, "points", points);
  check_same_device(op, "query", query, "points", points);
  TORCH_CHECK(query.dim() == 3 && points.dim() == 3 && query.size(0) == points.size(0), op,
              ": query (B, M, 3) and points (B, N, 3) expected, got ", shape_string(query), " and ",
              shape_string(points));
  TORCH_CHECK(grad_dist2.dim() == 3 && grad_dist2.sizes() == index.sizes() &&
                  grad_dist2.size(0) == query.size(0) && grad_dist2.size(1) == query.size(1),
              op, ": grad_dist2 and index must both have shape (B, M, k) = (", query.size(0), ", ",
              query.size(1), ", k), got ", shape_string(grad_dist2), " and ", shape_string(index));
}

}  // namespace ppt
