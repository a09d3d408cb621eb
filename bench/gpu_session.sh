#!/usr/bin/env bash
# Device-machine session in steps that each fit one 10-minute device call; results land in $OUT
# (set by the device tool; defaults to build/gpu-session) for committing under bench/results/.
#   bash bench/gpu_session.sh build              CUDA build (incremental: reuses build/ when the machine is warm)
#   bash bench/gpu_session.sh baselines          install the GPU baselines from the wheel folder, compile gsplat
#   bash bench/gpu_session.sh test               build, then the whole test suite on CPU + GPU
#   bash bench/gpu_session.sh bench [suite ...] [ppt bench options]
#                                                build, baselines, then `ppt bench --device cuda` (all suites or
#                                                those named; sparse_conv runs float16 and bfloat16 with peak memory)
# The device has no network: the GPU baselines come from wheels carried with the working tree, in
# $PPT_WHEELS (default .whl/, git-ignored): spconv-cu12x with its cumm-cu12x, and gsplat with its
# dependencies (fetch them beforehand with `pip download --dest .whl spconv-cu126 gsplat==1.5.3`). A
# baseline whose wheels are absent is reported as skipped by `ppt bench`, with its install hint.
# Calls made back to back find the previous build and installs on the same warm machine.
# DRY_RUN=1 prints the commands instead of running them (a check of the script without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-build/gpu-session}"
wheels="${PPT_WHEELS:-.whl}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
step="${1:-test}"
shift || true

run() {
  if [ -n "${DRY_RUN:-}" ]; then
    echo "+ $*"
  else
    "$@"
  fi
}

build() {
  {
    run nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    run python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" PPT_CUDA=ON \
      run python3 -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -5
    run python3 -m ppt info
  } 2>&1 | tee "$out/build.log"
}

# The first wheel in $wheels whose file name starts with $1 (pip's normalized spelling), or nothing.
wheel_of() {
  find "$wheels" -maxdepth 1 -name "$1-*.whl" 2>/dev/null | sort | tail -1
}

baselines() {
  {
    local spconv cumm gsplat
    spconv="$(wheel_of 'spconv_cu12*')"
    cumm="$(wheel_of 'cumm_cu12*')"
    if [ -n "$spconv" ] && [ -n "$cumm" ]; then
      # The CPU wheels (test extra) provide the same `spconv` module: replace them.
      run python3 -m pip uninstall -y -q spconv cumm
      run python3 -m pip install -q --no-index --find-links "$wheels" --no-deps "$spconv" "$cumm" \
        || echo "baselines: spconv CUDA wheel failed to install; ppt bench will report it skipped"
    else
      echo "baselines: no spconv-cu12x + cumm-cu12x wheels in $wheels; ppt bench will report spconv skipped"
    fi
    gsplat="$(wheel_of gsplat)"
    if [ -n "$gsplat" ]; then
      if run python3 -m pip install -q --no-index --find-links "$wheels" "$gsplat"; then
        # gsplat compiles its CUDA code on first use (minutes): do it here, not inside a timed step.
        run python3 -c 'import torch, gsplat; from gsplat.cuda._backend import _C; print("gsplat", gsplat.__version__, "compiled:", _C is not None)'
      else
        echo "baselines: gsplat (or one of its dependencies) is missing from $wheels; ppt bench will report it skipped"
      fi
    else
      echo "baselines: no gsplat wheel in $wheels; ppt bench will report gsplat skipped"
    fi
  } 2>&1 | tee "$out/baselines.log"
}

case "$step" in
  build) build ;;
  baselines) baselines ;;
  test)
    build
    run python3 -m pytest -q tests -p no:cacheprovider 2>&1 | tee "$out/tests.log" | tail -40
    ;;
  bench)
    build
    baselines
    run python3 -m ppt.bench "$@" --device cuda --out "$out" 2>&1 | tee "$out/bench.log"
    ;;
  *)
    echo "usage: bash bench/gpu_session.sh build|baselines|test|bench [suite ...] [ppt bench options]" >&2
    exit 2
    ;;
esac
