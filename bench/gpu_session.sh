#!/usr/bin/env bash
# Device-machine session in steps that each fit one 10-minute device call; results land in $OUT
# (set by the device tool; defaults to build/gpu-session) for committing under bench/results/.
#   bash bench/gpu_session.sh build          CUDA build (incremental: reuses build/ when the machine is warm)
#   bash bench/gpu_session.sh test           build, then the whole test suite on CPU + GPU
#   bash bench/gpu_session.sh bench [suite]  build, then the CUDA benchmark suites (all, or those named)
# Calls made back to back find the previous build on the same warm machine.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-build/gpu-session}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
step="${1:-test}"
shift || true

build() {
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" PPT_CUDA=ON \
      python3 -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -5
    python3 -m ppt info
  } 2>&1 | tee "$out/build.log"
}

case "$step" in
  build) build ;;
  test)
    build
    python3 -m pytest -q tests -p no:cacheprovider 2>&1 | tee "$out/tests.log" | tail -40
    ;;
  bench)
    build
    python3 -m bench "$@" --device cuda --out "$out" 2>&1 | tee "$out/bench.log"
    ;;
  *)
    echo "usage: bash bench/gpu_session.sh build|test|bench [suite ...]" >&2
    exit 2
    ;;
esac
