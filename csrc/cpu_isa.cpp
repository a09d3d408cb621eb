// Run-time choice of the CPU micro-kernel variant (ppt/indirect_gemm.h).
#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

#include "ppt/indirect_gemm.h"

namespace ppt {
namespace simd {
namespace {

CpuIsa detect() {
#if PPT_X86_DISPATCH
  __builtin_cpu_init();
  // Exactly the features of PPT_AVX512_TARGET and PPT_AVX2_TARGET.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return CpuIsa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::kAvx2;
#endif
  return CpuIsa::kBaseline;
}

CpuIsa choose() {
  const CpuIsa best = detect();
  const char* cap = std::getenv("PPT_CPU_ISA");
  if (cap == nullptr || *cap == '\0') return best;
  const std::string name(cap);
  CpuIsa wanted;
  if (name == "baseline")
    wanted = CpuIsa::kBaseline;
  else if (name == "avx2")
    wanted = CpuIsa::kAvx2;
  else if (name == "avx512")
    wanted = CpuIsa::kAvx512;
  else
    TORCH_CHECK(false, "PPT_CPU_ISA must be baseline, avx2 or avx512, got '", name, "'");
  return std::min(wanted, best);
}

}  // namespace

CpuIsa cpu_isa() {
  static const CpuIsa isa = choose();
  return isa;
}

}  // namespace simd
}  // namespace ppt
