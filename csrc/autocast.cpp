// Autocast kernels of the ppt ops: what each op does inside torch.autocast on CPU and CUDA, chosen
// to match its torch counterpart (table in docs/ops.md, "Mixed precision"). Each kernel casts the
// floating tensor arguments (float64 is left alone, as torch does) with autocast's weight cache, then
// redispatches below the autocast key, so autograd records the casts and gradients reach float32
// parameters in float32. Ops registered nowhere here fall through unchanged: the sparse pools (exact
// in any dtype, like max_pool3d on CUDA), the kernel map (integer), segment_bn_stats (its only floating
// input is the data; it accumulates in float32 already), and the backward ops, whose inputs already
// carry the dtypes their forward ran in.
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace ppt {
namespace {

enum class CastPolicy {
  kLowerPrecision,  // to the current autocast dtype (torch.get_autocast_dtype), like conv3d
  kFloat32,         // to float32, like cdist
  kFloat32Tables,   // batch_norm's mixed precision: the data (x, grad_out) keeps its dtype, which
                    // is the output's; statistics and affine tables become float32, the dtype the
                    // kernels accumulate in
};

bool is_data_argument(const std::string& name) { return name == "x" || name == "grad_out"; }

template <CastPolicy policy, c10::DeviceType device>
void autocast_kernel(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(at::autocast::get_autocast_dispatch_key_from_device_type(device));
  const at::ScalarType target = policy == CastPolicy::kLowerPrecision
                                    ? at::autocast::get_lower_precision_fp_from_device_type(device)
                                    : at::kFloat;
  const std::vector<c10::Argument>& arguments = op.schema().arguments();
  const size_t first = stack->size() - arguments.size();
  for (size_t a = 0; a < arguments.size(); ++a) {
    c10::IValue& value = (*stack)[first + a];
    if (!value.isTensor()) continue;  // None for an absent optional tensor, or a scalar
    if (policy == CastPolicy::kFloat32Tables && is_data_argument(arguments[a].name())) continue;
    value = at::autocast::cached_cast(target, value.toTensor(), device);
  }
  op.callBoxed(stack);
}

template <CastPolicy policy, c10::DeviceType device>
torch::CppFunction kernel() {
  return torch::CppFunction::makeFromBoxedFunction<&autocast_kernel<policy, device>>();
}

template <c10::DeviceType device>
void register_autocast_kernels(torch::Library& m) {
  m.impl("sparse_conv", kernel<CastPolicy::kLowerPrecision, device>());
  for (const char* op : {"voxelize", "farthest_point_sample", "knn", "project_gaussians", "spherical_harmonics",
                         "bin_gaussians", "rasterize_tiles"})
    m.impl(op, kernel<CastPolicy::kFloat32, device>());
  for (const char* op : {"segment_bn_apply", "segment_bn_backward_reduce", "segment_bn_backward"})
    m.impl(op, kernel<CastPolicy::kFloat32Tables, device>());
}

}  // namespace

TORCH_LIBRARY_IMPL(ppt, AutocastCPU, m) { register_autocast_kernels<c10::DeviceType::CPU>(m); }

TORCH_LIBRARY_IMPL(ppt, AutocastCUDA, m) { register_autocast_kernels<c10::DeviceType::CUDA>(m); }

}  // namespace ppt
