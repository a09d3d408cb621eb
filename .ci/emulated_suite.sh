#!/usr/bin/env bash
# The emulated CUDA tests (every test on the `emulated` device, plus tests/test_emulation.py with its
# kernel-coverage check) in one of two extra configurations; the README's test command has already
# run them once, in forward thread order, against the installed ppt._C_emulated.
#   reverse      each block's threads run from the last to the first between barriers;
#   sanitizers   against a ppt._C_emulated built with AddressSanitizer + UBSan (in
#                build/emulation-sanitizers), with libasan preloaded into Python.
# Tests marked slow are left out of both (they add minutes and no kernel), and the sanitizer run
# leaves out gradcheck, opcheck and torch.compile tests: they repeat kernels the other tests launch,
# and AddressSanitizer makes fiber-heavy kernels several times slower.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
tests=(tests/ops tests/nn tests/models tests/test_emulation.py)
pytest_args=(-q -p no:cacheprovider -m "not slow" --emulation-coverage)
emulated="emulated or test_emulation"

case "$mode" in
  reverse)
    PPT_EMULATED_THREAD_ORDER=reverse python -m pytest "${pytest_args[@]}" -k "$emulated" "${tests[@]}"
    ;;
  sanitizers)
    build=build/emulation-sanitizers
    command -v cmake >/dev/null && command -v ninja >/dev/null || python -m pip install -q cmake ninja
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSKBUILD_PROJECT_VERSION=0.0.0 \
      -DPython_EXECUTABLE="$(command -v python)" -DPPT_CUDA=OFF -DPPT_EMULATION=ON -DPPT_EMULATION_SANITIZE=ON >/dev/null
    cmake --build "$build" --target _C_emulated -j "$(nproc)"
    library="$(ls "$build"/_C_emulated*.so)"
    compiler="${CXX:-g++}"
    # detect_leaks=0: Python and torch keep allocations for the process lifetime by design.
    # detect_stack_use_after_return=0: fibers switch stacks under ASan's fake-stack bookkeeping.
    PPT_EMULATION_LIBRARY="$library" \
      LD_PRELOAD="$("$compiler" -print-file-name=libasan.so) $("$compiler" -print-file-name=libubsan.so)" \
      ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      python -m pytest "${pytest_args[@]}" -k "($emulated) and not gradcheck and not opcheck and not compile" \
      "${tests[@]}"
    ;;
  *)
    echo "usage: $0 reverse|sanitizers"
    exit 2
    ;;
esac
