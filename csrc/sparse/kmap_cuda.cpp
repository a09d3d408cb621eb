// CUDA glue of sparse_kernel_map: allocates with ATen, launches the torch-free kernels of
// kmap_cuda.cu on the current stream; orchestration is shared with the CPU (kmap_plan.cpp).
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "sparse/kmap_plan.h"
#include "sparse/sparse_cuda.h"

namespace ppt {
namespace {

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

at::Tensor pack_keys_cuda(const at::Tensor& indices, const VoxelPacking& packing) {
  at::Tensor keys = at::empty({indices.size(0)}, indices.options().dtype(at::kLong));
  launch_pack_keys(indices.const_data_ptr<int32_t>(), indices.size(0), packing, keys.data_ptr<int64_t>(),
                   current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return keys;
}

int64_t build_table_cuda(const at::Tensor& keys, at::Tensor& table_keys, at::Tensor& table_values) {
  at::Tensor duplicate = at::full({1}, INT64_MAX, keys.options());
  launch_build_hash_table(keys.const_data_ptr<int64_t>(), keys.size(0), table_keys.data_ptr<int64_t>(),
                          table_values.data_ptr<int32_t>(), table_keys.size(0), duplicate.data_ptr<int64_t>(),
                          current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int64_t row = duplicate.item<int64_t>();
  return row == INT64_MAX ? -1 : row;
}

at::Tensor submanifold_map_cuda(const at::Tensor& indices, const ConvGeometry& geometry, const VoxelPacking& packing,
                                const at::Tensor& table_keys, const at::Tensor& table_values) {
  at::Tensor map = at::empty({geometry.volume(), indices.size(0)}, indices.options());
  launch_submanifold_map(indices.const_data_ptr<int32_t>(), indices.size(0), geometry, packing,
                         table_keys.const_data_ptr<int64_t>(), table_values.const_data_ptr<int32_t>(),
                         table_keys.size(0), map.data_ptr<int32_t>(), current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return map;
}

at::Tensor strided_candidates_cuda(const at::Tensor& indices, const ConvGeometry& geometry,
                                   const VoxelPacking& out_packing) {
  at::Tensor candidates = at::empty({geometry.volume(), indices.size(0)}, indices.options().dtype(at::kLong));
  launch_strided_candidates(indices.const_data_ptr<int32_t>(), indices.size(0), geometry, out_packing,
                            candidates.data_ptr<int64_t>(), current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return candidates;
}

at::Tensor lookup_cuda(const at::Tensor& keys, const at::Tensor& table_keys, const at::Tensor& table_values) {
  at::Tensor rows = at::empty(keys.sizes(), keys.options().dtype(at::kInt));
  launch_hash_lookup(keys.const_data_ptr<int64_t>(), keys.numel(), table_keys.const_data_ptr<int64_t>(),
                     table_values.const_data_ptr<int32_t>(), table_keys.size(0), rows.data_ptr<int32_t>(),
                     current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return rows;
}

at::Tensor unpack_keys_cuda(const at::Tensor& keys, const VoxelPacking& packing) {
  at::Tensor sites = at::empty({keys.size(0), 4}, keys.options().dtype(at::kInt));
  launch_unpack_keys(keys.const_data_ptr<int64_t>(), keys.size(0), packing, sites.data_ptr<int32_t>(),
                     current_stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return sites;
}

constexpr KernelMapBackend kCudaBackend{&pack_keys_cuda,          &build_table_cuda, &submanifold_map_cuda,
                                        &strided_candidates_cuda, &lookup_cuda,      &unpack_keys_cuda};

std::tuple<at::Tensor, at::Tensor, at::Tensor> sparse_kernel_map_cuda(
    const at::Tensor& indices, int64_t batch_size, at::IntArrayRef spatial_shape, at::IntArrayRef kernel_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool submanifold) {
  const c10::cuda::CUDAGuard guard(indices.device());
  return build_kernel_map(kCudaBackend, indices, batch_size, spatial_shape, kernel_size, stride, padding, dilation,
                          submanifold);
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, CUDA, m) { m.impl("sparse_kernel_map", &sparse_kernel_map_cuda); }

}  // namespace ppt
