#!/usr/bin/env bash
# Compile-check the CUDA sources without a GPU or a CUDA build of torch:
#   - every csrc/**/*.cu with plain nvcc for sm_80 and sm_90 (they are torch-free by design);
#   - every csrc/**/*_cuda.cpp glue file with the host compiler in -fsyntax-only mode against
#     torch's headers and the CUDA toolkit's headers.
# Fails on the first error. Skips, saying so, when nvcc is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvcc >/dev/null 2>&1; then
  echo "check_cuda_sources: nvcc not found; CUDA sources were NOT compile-checked"
  exit 0
fi
cuda_include="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")/include"
[ -f "$cuda_include/cuda_runtime_api.h" ] || cuda_include=/usr/local/cuda/include
torch_include="$(python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')"
abi="$(python -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
jobs="$(nproc)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

mapfile -t kernels < <(find csrc -name '*.cu' | sort)
mapfile -t glue < <(find csrc -name '*_cuda.cpp' | sort)
echo "check_cuda_sources: nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'): ${#kernels[@]} .cu files, ${#glue[@]} glue files"

printf '%s\n' "${kernels[@]}" | xargs -P "$jobs" -I{} sh -c '
  nvcc -c -std=c++17 -O3 --expt-relaxed-constexpr -Icsrc/include -Icsrc \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
    "{}" -o "'"$out"'/$(echo {} | tr / _).o" || { echo "nvcc failed: {}"; exit 255; }
  echo "  ok (sm_80, sm_90): {}"'

printf '%s\n' "${glue[@]}" | xargs -P "$jobs" -I{} sh -c '
  ${CXX:-g++} -std=c++17 -fsyntax-only -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE -D_GLIBCXX_USE_CXX11_ABI='"$abi"' \
    -Icsrc/include -Icsrc -isystem "'"$torch_include"'" -isystem "'"$torch_include"'/torch/csrc/api/include" \
    -isystem "'"$cuda_include"'" "{}" || { echo "glue check failed: {}"; exit 255; }
  echo "  ok (syntax): {}"'
echo "check_cuda_sources: all CUDA sources compile"
