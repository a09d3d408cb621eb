// Emulation build: force-included (-include) before every csrc/**/*_cuda.cpp. The glue registers
// its implementations with TORCH_LIBRARY_IMPL(ppt, CUDA, m); here that macro records the
// registration function instead, and ppt.testing.emulated_cuda() (runtime.cpp: enable) applies
// the recorded functions to the CPU dispatch key of the `ppt` ops for as long as it is active.
#pragma once

#include <torch/library.h>

#include <string_view>

namespace ppt::emulation {
using RegisterImpls = void (*)(torch::Library&);
// Records one glue file's registration function; returns true (it initialises a static).
bool add_cuda_registration(RegisterImpls register_impls);
}  // namespace ppt::emulation

#undef TORCH_LIBRARY_IMPL
#define TORCH_LIBRARY_IMPL(ns, k, m)                                                          \
  static_assert(std::string_view(#ns) == "ppt" && std::string_view(#k) == "CUDA",           \
                "the emulation build only re-targets ppt's CUDA implementations");            \
  PPT_EMULATED_LIBRARY_IMPL_(m, C10_UID)
#define PPT_EMULATED_LIBRARY_IMPL_(m, uid) PPT_EMULATED_LIBRARY_IMPL__(m, uid)
#define PPT_EMULATED_LIBRARY_IMPL__(m, uid)                                                   \
  static void ppt_emulated_register_##uid(torch::Library&);                                  \
  [[maybe_unused]] static const bool ppt_emulated_registered_##uid =                        \
      ::ppt::emulation::add_cuda_registration(&ppt_emulated_register_##uid);                 \
  void ppt_emulated_register_##uid(torch::Library& m)
