// The single op registry of ppt: every schema is defined here once; kernels register their
// implementations per dispatch key in csrc/<family>/<op>_{cpu,cuda}.cpp.
#include <Python.h>
#include <torch/library.h>

#include <string>

#include "ppt/indirect_gemm.h"

TORCH_LIBRARY(ppt, m) {
  // ---- point ops ---------------------------------------------------------------------------
  m.def("voxelize(Tensor coord, float voxel_size, Tensor? batch=None) -> (Tensor, Tensor, Tensor)");
  m.def("farthest_point_sample(Tensor xyz, int num_samples, int start_index=0) -> Tensor");
  m.def("knn(Tensor query, Tensor points, int k) -> (Tensor, Tensor)");
  m.def("knn_backward(Tensor grad_dist2, Tensor query, Tensor points, Tensor index) -> (Tensor, Tensor)");
  // Space-filling-curve codes of grid coordinates (PTv3 serialization, csrc/point/serialization_*):
  // code = batch << 3*depth | curve bits; order "z" | "z-trans" | "hilbert" | "hilbert-trans".
  m.def("serialization_encode(Tensor grid_coord, Tensor? batch, int depth, str order) -> Tensor");
  m.def("serialization_decode(Tensor code, int depth, str order) -> (Tensor grid_coord, Tensor batch)");

  // ---- segmented (per-dataset) batch norm -------------------------------------------------
  // ppt.ops.segment_batch_norm composes these so that a distributed all-reduce can sit between
  // the statistics and their use, forward (stats -> apply) and backward (reduce -> backward).
  m.def("segment_bn_stats(Tensor x, Tensor segment, int num_segments) -> (Tensor count, Tensor mean, Tensor m2)");
  m.def("segment_bn_apply(Tensor x, Tensor segment, Tensor mean, Tensor invstd, Tensor? weight, Tensor? bias) -> Tensor");
  m.def("segment_bn_backward_reduce(Tensor grad_out, Tensor x, Tensor segment, Tensor mean, Tensor invstd) -> (Tensor sum_dy, Tensor sum_dy_xhat)");
  m.def("segment_bn_backward(Tensor grad_out, Tensor x, Tensor segment, Tensor mean, Tensor invstd, Tensor? weight, Tensor? count, Tensor? sum_dy, Tensor? sum_dy_xhat) -> Tensor");

  // ---- Gaussian rasterization (csrc/raster) --------------------------------------------------
  // B scenes of N Gaussians seen by C cameras each; I = B * C images.
  m.def("project_gaussians(Tensor means, Tensor quats, Tensor scales, Tensor viewmats, Tensor Ks, "
        "int width, int height, float near_plane, float far_plane, float eps2d) "
        "-> (Tensor means2d, Tensor depths, Tensor conics, Tensor radii)");
  m.def("project_gaussians_backward(Tensor grad_means2d, Tensor grad_depths, Tensor grad_conics, "
        "Tensor means, Tensor quats, Tensor scales, Tensor viewmats, Tensor Ks, Tensor radii, "
        "int width, int height, float near_plane, float far_plane, float eps2d) -> (Tensor, Tensor, Tensor)");
  m.def("spherical_harmonics(Tensor sh, Tensor means, Tensor viewmats, int degree) -> Tensor");
  m.def("spherical_harmonics_backward(Tensor grad_colors, Tensor sh, Tensor means, Tensor viewmats, "
        "int degree) -> (Tensor, Tensor)");
  m.def("bin_gaussians(Tensor means2d, Tensor radii, Tensor depths, int width, int height, int tile_size) "
        "-> (Tensor tiles_per_gaussian, Tensor tile_offsets, Tensor flatten_ids)");
  // deterministic is consumed by the backward only (saved by the autograd formula).
  m.def("rasterize_tiles(Tensor means2d, Tensor conics, Tensor colors, Tensor opacities, int width, "
        "int height, int tile_size, float alpha_cap, Tensor tile_offsets, Tensor flatten_ids, "
        "bool deterministic=False) -> (Tensor colors, Tensor alphas, Tensor last_ids)");
  m.def("rasterize_tiles_backward(Tensor grad_colors, Tensor grad_alphas, Tensor means2d, Tensor conics, "
        "Tensor colors, Tensor opacities, int width, int height, int tile_size, float alpha_cap, "
        "Tensor tile_offsets, Tensor flatten_ids, Tensor render_alphas, Tensor last_ids, "
        "bool deterministic) -> (Tensor, Tensor, Tensor, Tensor)");

  // ---- sparse convolution ------------------------------------------------------------------
  // Kernel map: (out_indices (M, 4) int32, pairs (2, P) int32 [input rows; output rows],
  // pair_offsets (K + 1,) int64 grouping the pairs by kernel offset).
  m.def("sparse_kernel_map(Tensor indices, int batch_size, int[] spatial_shape, int[] kernel_size, "
        "int[] stride, int[] padding, int[] dilation, bool submanifold) -> (Tensor, Tensor, Tensor)");
  // Convolution with weight (Cout, K, Cin) over a kernel map (CPU: indirect GEMM; CUDA: gather-GEMM-scatter).
  m.def("sparse_conv(Tensor features, Tensor weight, Tensor pairs, Tensor pair_offsets, SymInt num_out) -> Tensor");
  m.def("sparse_conv_backward(Tensor grad_out, Tensor features, Tensor weight, Tensor pairs, "
        "Tensor pair_offsets, SymInt num_out) -> (Tensor, Tensor)");

  // ---- sparse pooling over a kernel map (csrc/sparse/pool_*) --------------------------------
  // out[o] = max / mean of features[i] over the pairs (i, o); argmax (num_out, C) int32 holds the
  // winning input row (-1 where no pair reaches o). The backward ops are linear in grad_out.
  m.def("sparse_max_pool(Tensor features, Tensor pairs, Tensor pair_offsets, SymInt num_out) "
        "-> (Tensor out, Tensor argmax)");
  m.def("sparse_max_pool_backward(Tensor grad_out, Tensor argmax, Tensor pairs, Tensor pair_offsets, "
        "SymInt num_in) -> Tensor");
  m.def("sparse_avg_pool(Tensor features, Tensor pairs, Tensor pair_offsets, SymInt num_out) -> Tensor");
  m.def("sparse_avg_pool_backward(Tensor grad_out, Tensor pairs, Tensor pair_offsets, SymInt num_in) -> Tensor");
}

namespace {

PyObject* build_info(PyObject*, PyObject*) {
#ifdef PPT_WITH_CUDA
  PyObject* cuda = Py_True;
#else
  PyObject* cuda = Py_False;
#endif
#ifdef _OPENMP
  PyObject* openmp = Py_True;
#else
  PyObject* openmp = Py_False;
#endif
  // A bad PPT_CPU_ISA must not break `import ppt` (which reads the version from here): report it,
  // and let the CPU ops raise it.
  std::string cpu_kernels;
  try {
    const ppt::simd::CpuIsa isa = ppt::simd::cpu_isa();
    cpu_kernels = isa == ppt::simd::CpuIsa::kAvx512 ? "avx512" : isa == ppt::simd::CpuIsa::kAvx2 ? "avx2" : "baseline";
  } catch (const c10::Error& error) {
    cpu_kernels = std::string("invalid: ") + error.what_without_backtrace();
  }
  return Py_BuildValue("{s:s,s:s,s:O,s:s,s:O,s:s}", "version", PPT_VERSION, "torch", PPT_TORCH_VERSION,
                       "cuda", cuda, "cuda_archs", PPT_CUDA_ARCHS, "openmp", openmp, "cpu_kernels", cpu_kernels.c_str());
}

PyMethodDef module_methods[] = {
    {"build_info", build_info, METH_NOARGS,
     "Facts about this build of ppt._C (version, torch, cuda, cuda_archs, openmp) and the CPU kernel variant "
     "chosen for this machine (cpu_kernels)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C",
                          "Compiled kernels of ppt; ops are registered as torch.ops.ppt.*", -1,
                          module_methods};

}  // namespace

// Importing the module runs the static TORCH_LIBRARY registrations above and in every kernel file.
PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module_def); }
