#include "sparse/sparse_checks.h"

#include <ATen/ops/aminmax.h>
#include <ATen/ops/any.h>
#include <ATen/ops/lt.h>
#include <ATen/ops/ge.h>

#include "ppt/tensor_checks.h"

namespace ppt {
namespace {

constexpr const char* kKernelMapOp = "sparse_kernel_map";

void check_triple(const char* name, at::IntArrayRef values, int64_t lowest, const char* expected) {
  TORCH_CHECK(values.size() == 3, kKernelMapOp, ": ", name, " must have 3 entries (x, y, z), got ",
              values.size());
  for (int64_t v : values) {
    TORCH_CHECK(v >= lowest, kKernelMapOp, ": ", name, " entries must be ", expected, ", got ",
                values);
  }
}

}  // namespace

VoxelPacking site_packing(const int64_t* extent) { return VoxelPacking{extent[0], extent[1], extent[2]}; }

ConvGeometry check_kernel_map_args(const at::Tensor& indices, int64_t batch_size,
                                   at::IntArrayRef spatial_shape, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, bool submanifold) {
  const char* op = kKernelMapOp;
  check_dtype(op, "indices", indices, at::kInt);
  TORCH_CHECK(indices.dim() == 2 && indices.size(1) == 4, op,
              ": indices must have shape (N, 4) with rows [batch, x, y, z], got ", shape_string(indices));
  TORCH_CHECK(batch_size >= 1, op, ": batch_size must be >= 1, got ", batch_size);
  check_triple("spatial_shape", spatial_shape, 1, ">= 1");
  check_triple("kernel_size", kernel_size, 1, ">= 1");
  check_triple("stride", stride, 1, ">= 1");
  check_triple("padding", padding, 0, ">= 0");
  check_triple("dilation", dilation, 1, ">= 1");
  if (submanifold) {
    TORCH_CHECK(stride[0] == 1 && stride[1] == 1 && stride[2] == 1, op,
                ": a submanifold convolution must have stride 1, got ", stride);
    // A centred kernel needs odd sizes; spconv rejects even ones too.
    TORCH_CHECK(kernel_size[0] % 2 == 1 && kernel_size[1] % 2 == 1 && kernel_size[2] % 2 == 1, op,
                ": a submanifold convolution needs odd kernel_size entries, got ", kernel_size);
  }
  ConvGeometry g{};
  for (int a = 0; a < 3; ++a) {
    g.in_shape[a] = spatial_shape[a];
    g.kernel[a] = kernel_size[a];
    g.stride[a] = stride[a];
    g.padding[a] = submanifold ? kernel_size[a] / 2 * dilation[a] : padding[a];
    g.dilation[a] = dilation[a];
    g.out_shape[a] = submanifold ? spatial_shape[a]
                                 : conv_output_size(spatial_shape[a], kernel_size[a], stride[a],
                                                    padding[a], dilation[a]);
    TORCH_CHECK(g.out_shape[a] >= 1, op, ": the output spatial shape would be empty along axis ", a,
                " (input ", spatial_shape, ", kernel_size ", kernel_size, ", stride ", stride,
                ", padding ", padding, ", dilation ", dilation, ")");
  }
  TORCH_CHECK(g.volume() <= (int64_t{1} << 20), op, ": kernel_size ", kernel_size,
              " has more than 2^20 offsets");
  for (const int64_t* extent : {g.in_shape, g.out_shape}) {
    const unsigned __int128 keys = static_cast<unsigned __int128>(batch_size) * extent[0] *
                                   extent[1] * extent[2];
    TORCH_CHECK(keys < (static_cast<unsigned __int128>(1) << 62), op, ": batch_size x spatial_shape (",
                batch_size, " x ", at::IntArrayRef(extent, 3),
                ") does not fit the 62-bit site key packing");
  }
  if (indices.size(0) > 0) {
    TORCH_CHECK(indices.size(0) < INT32_MAX, op, ": at most 2^31-2 sites are supported, got ",
                indices.size(0));
    const auto [lowest, highest] = at::aminmax(indices, 0);
    const at::Tensor lo = lowest.cpu(), hi = highest.cpu();
    const int32_t* l = lo.const_data_ptr<int32_t>();
    const int32_t* h = hi.const_data_ptr<int32_t>();
    TORCH_CHECK(l[0] >= 0 && h[0] < batch_size, op, ": batch ids (indices[:, 0]) must be in [0, batch_size=",
                batch_size, "), got range [", l[0], ", ", h[0], "]");
    for (int a = 0; a < 3; ++a) {
      TORCH_CHECK(l[a + 1] >= 0 && h[a + 1] < spatial_shape[a], op, ": coordinates indices[:, ", a + 1,
                  "] must be in [0, spatial_shape[", a, "]=", spatial_shape[a], "), got range [",
                  l[a + 1], ", ", h[a + 1], "]");
    }
  }
  return g;
}

void fail_duplicate_site(const at::Tensor& indices, int64_t row) {
  const at::Tensor site = indices[row].cpu();
  TORCH_CHECK(false, kKernelMapOp, ": indices contain a duplicate site: row ", row, " = ",
              c10::IntArrayRef(site.to(at::kLong).const_data_ptr<int64_t>(), 4),
              " appears earlier too; merge duplicates first (e.g. with ppt.ops.voxelize)");
}

std::vector<int64_t> check_pairs(const char* op, const at::Tensor& pairs, const at::Tensor& pair_offsets,
                                 int64_t volume, PairRows rows) {
  check_dtype(op, "pairs", pairs, at::kInt);
  TORCH_CHECK(pairs.dim() == 2 && pairs.size(0) == 2, op,
              ": pairs must have shape (2, P) [input rows; output rows], got ", shape_string(pairs));
  check_dtype(op, "pair_offsets", pair_offsets, at::kLong);
  if (volume >= 0) {
    TORCH_CHECK(pair_offsets.dim() == 1 && pair_offsets.size(0) == volume + 1, op,
                ": pair_offsets must have shape (kernel_volume + 1,) = (", volume + 1, ",), got ",
                shape_string(pair_offsets));
  } else {
    TORCH_CHECK(pair_offsets.dim() == 1 && pair_offsets.size(0) >= 1, op,
                ": pair_offsets must have shape (kernel_volume + 1,), got ", shape_string(pair_offsets));
  }
  TORCH_CHECK(rows.num_in >= 0, op, ": ", rows.in_name, " must be >= 0, got ", rows.num_in);
  TORCH_CHECK(rows.num_out >= 0, op, ": num_out must be >= 0, got ", rows.num_out);
  const at::Tensor host = pair_offsets.cpu().contiguous();
  std::vector<int64_t> offsets(host.const_data_ptr<int64_t>(), host.const_data_ptr<int64_t>() + host.numel());
  TORCH_CHECK(offsets.front() == 0 && offsets.back() == pairs.size(1), op,
              ": pair_offsets must start at 0 and end at P=", pairs.size(1), ", got ", offsets.front(),
              " and ", offsets.back());
  for (size_t k = 0; k + 1 < offsets.size(); ++k) {
    TORCH_CHECK(offsets[k] <= offsets[k + 1], op, ": pair_offsets must be non-decreasing");
  }
  if (pairs.size(1) > 0) {
    const auto [lowest, highest] = at::aminmax(pairs, 1);
    const at::Tensor lo = lowest.cpu(), hi = highest.cpu();
    const int32_t* l = lo.const_data_ptr<int32_t>();
    const int32_t* h = hi.const_data_ptr<int32_t>();
    TORCH_CHECK(l[0] >= 0 && h[0] < rows.num_in, op, ": pairs[0] (input rows) must be in [0, ", rows.in_name, "=",
                rows.num_in, "), got range [", l[0], ", ", h[0], "]");
    TORCH_CHECK(l[1] >= 0 && h[1] < rows.num_out, op, ": pairs[1] (output rows) must be in [0, num_out=",
                rows.num_out, "), got range [", l[1], ", ", h[1], "]");
  }
  return offsets;
}

std::vector<int64_t> check_conv_args(const char* op, const at::Tensor& features,
                                     const at::Tensor& weight, const at::Tensor& pairs,
                                     const at::Tensor& pair_offsets, int64_t num_out) {
  check_floating(op, "features", features);
  check_dim(op, "features", features, 2, "(N, in_channels)");
  check_dim(op, "weight", weight, 3, "(out_channels, kernel_volume, in_channels)");
  check_same_dtype(op, "features", features, "weight", weight);
  check_same_device(op, "features", features, "weight", weight);
  check_same_device(op, "features", features, "pairs", pairs);
  check_same_device(op, "features", features, "pair_offsets", pair_offsets);
  TORCH_CHECK(weight.size(2) == features.size(1), op, ": weight expects ", weight.size(2),
              " input channels but features have ", features.size(1), " (features ",
              shape_string(features), ", weight ", shape_string(weight), ")");
  return check_pairs(op, pairs, pair_offsets, weight.size(1), {"N", features.size(0), num_out});
}

void check_conv_backward_grad(const at::Tensor& grad_out, const at::Tensor& features,
                              const at::Tensor& weight, int64_t num_out) {
  constexpr const char* op = "sparse_conv_backward";
  check_same_dtype(op, "grad_out", grad_out, "features", features);
  check_same_device(op, "grad_out", grad_out, "features", features);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == num_out && grad_out.size(1) == weight.size(0),
              op, ": grad_out must have shape (num_out, out_channels) = (", num_out, ", ",
              weight.size(0), "), got ", shape_string(grad_out));
}

namespace {

// rows (M, C) floating point on the device of pairs and pair_offsets.
void check_pooled_rows(const char* op, const char* name, const at::Tensor& rows, const char* layout,
                       const at::Tensor& pairs, const at::Tensor& pair_offsets) {
  check_floating(op, name, rows);
  check_dim(op, name, rows, 2, layout);
  check_same_device(op, name, rows, "pairs", pairs);
  check_same_device(op, name, rows, "pair_offsets", pair_offsets);
}

}  // namespace

std::vector<int64_t> check_pool_args(const char* op, const at::Tensor& features, const at::Tensor& pairs,
                                     const at::Tensor& pair_offsets, int64_t num_out) {
  check_pooled_rows(op, "features", features, "(N, channels)", pairs, pair_offsets);
  return check_pairs(op, pairs, pair_offsets, -1, {"N", features.size(0), num_out});
}

std::vector<int64_t> check_pool_backward_args(const char* op, const at::Tensor& grad_out, const at::Tensor& argmax,
                                              const at::Tensor& pairs, const at::Tensor& pair_offsets,
                                              int64_t num_in) {
  check_pooled_rows(op, "grad_out", grad_out, "(num_out, channels)", pairs, pair_offsets);
  if (argmax.defined()) {
    check_dtype(op, "argmax", argmax, at::kInt);
    check_same_device(op, "grad_out", grad_out, "argmax", argmax);
    TORCH_CHECK(argmax.sizes() == grad_out.sizes(), op, ": argmax must have the shape of grad_out ",
                shape_string(grad_out), ", got ", shape_string(argmax));
  }
  return check_pairs(op, pairs, pair_offsets, -1, {"num_in", num_in, grad_out.size(0)});
}

}  // namespace ppt
