#!/usr/bin/env bash
# One device-machine session: CUDA build, the full test suite on the GPU, then the benchmark
# suites on CUDA. Everything it produces lands in $OUT (set by the device tool; defaults to
# build/gpu-session) for committing under bench/results/.
#   bash bench/gpu_session.sh [suite ...]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-build/gpu-session}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" PPT_CUDA=ON \
    pip install --no-build-isolation --no-deps -e . 2>&1 | tail -5
  ppt info
} 2>&1 | tee "$out/build.log"
python -m pytest -q -x tests -p no:cacheprovider 2>&1 | tee "$out/tests.log" | tail -20
python -m bench "$@" --device cuda --out "$out" 2>&1 | tee "$out/bench.log"
