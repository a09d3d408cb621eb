"""Testing aids: ppt's CUDA kernels executed on CPU (the emulation build, docs/ops.md).

Inside ``with ppt.testing.emulated_cuda():`` every ``torch.ops.ppt`` operator called on CPU tensors
runs its CUDA implementation instead of its CPU kernel: the ``csrc/**/*_cuda.cpp`` glue (checks,
allocation sizes, dtype dispatch, launch configuration) and the ``*_cuda.cu`` kernels, on HIP-CPU
fibers. It needs ``ppt._C_emulated``, built with ``PPT_EMULATION=ON``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import os
from collections.abc import Iterator
from types import ModuleType

import torch

import ppt  # noqa: F401  (loads ppt._C, which defines the ops the emulation re-targets)

__all__ = ["EmulatedCuda", "emulated_cuda", "emulation_active", "emulation_available", "launches_since_load",
           "runs_cuda_kernels"]

#: Path of a ``_C_emulated`` library to load instead of the installed one (the sanitizer build).
LIBRARY_ENV = "PPT_EMULATION_LIBRARY"
#: ``forward`` (default) or ``reverse``: the order of a block's threads between barriers.
THREAD_ORDER_ENV = "PPT_EMULATED_THREAD_ORDER"

_BUILD_HINT = (
    "ppt was built without its CUDA emulation module (ppt._C_emulated). Rebuild it from the source "
    "checkout with:\n    PPT_EMULATION=ON pip install --no-build-isolation -e ."
)

_module: ModuleType | None = None


def _emulation_module() -> ModuleType:
    global _module
    if _module is None:
        path = os.environ.get(LIBRARY_ENV)
        if path:
            if not os.path.isfile(path):
                raise RuntimeError(f"{LIBRARY_ENV}={path!r} is not a file; point it at a built _C_emulated library")
            loader = importlib.machinery.ExtensionFileLoader("ppt._C_emulated", path)
            spec = importlib.util.spec_from_file_location("ppt._C_emulated", path, loader=loader)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
        else:
            try:
                module = importlib.import_module("ppt._C_emulated")
            except ImportError as error:
                raise RuntimeError(f"{_BUILD_HINT}\n({error})") from error
        _module = module
    return _module


def emulation_available() -> bool:
    """Whether this installation can run :func:`emulated_cuda` (it has ``ppt._C_emulated``)."""
    if _module is not None or os.environ.get(LIBRARY_ENV):
        return True
    return importlib.util.find_spec("ppt._C_emulated") is not None


def emulation_active() -> bool:
    """Whether an :func:`emulated_cuda` context is open."""
    return _module is not None and _module.active()


def launches_since_load() -> dict[str, int]:
    """Launches per ``__global__`` kernel since the emulation module was loaded in this process (every
    :func:`emulated_cuda` context together); empty when it was never used."""
    return {} if _module is None else dict(_module.launch_counts())


def runs_cuda_kernels(device: torch.device | str) -> bool:
    """Whether ppt's ops on tensors of ``device`` run their CUDA implementation: on a CUDA device,
    and on CPU while :func:`emulated_cuda` is active. Tests use it to expect CUDA behaviour (limits,
    determinism of cuBLAS rather than of CPU BLAS thread counts)."""
    return torch.device(device).type == "cuda" or emulation_active()


class EmulatedCuda:
    """The handle :func:`emulated_cuda` yields. ``launches`` maps each ``__global__`` kernel launched
    inside the context (so far, or until it closed) to its number of launches."""

    def __init__(self, module: ModuleType, reverse_threads: bool):
        self._module = module
        self._start = module.launch_counts()
        self._final: dict[str, int] | None = None
        self.reverse_threads = reverse_threads

    @property
    def launches(self) -> dict[str, int]:
        if self._final is not None:
            return dict(self._final)
        now = self._module.launch_counts()
        return {name: count - self._start.get(name, 0) for name, count in now.items() if count > self._start.get(name, 0)}

    def _close(self) -> None:
        self._final = self.launches


def _thread_order_from_env() -> bool:
    order = os.environ.get(THREAD_ORDER_ENV, "forward")
    if order not in ("forward", "reverse"):
        raise ValueError(f"{THREAD_ORDER_ENV} must be 'forward' or 'reverse', got {order!r}")
    return order == "reverse"


@contextlib.contextmanager
def emulated_cuda(*, reverse_threads: bool | None = None) -> Iterator[EmulatedCuda]:
    """Run ppt's ops on CPU tensors through their CUDA glue and kernels while the context is open.

    ``reverse_threads`` runs each block's threads from the last to the first between barriers
    (default: ``$PPT_EMULATED_THREAD_ORDER``, else forward), which exposes a missing barrier when a
    higher thread reads a lower thread's write. Contexts nest; the CPU kernels return when the
    outermost one closes. The switch is process-wide: do not run CPU kernels in other threads
    meanwhile. Raises RuntimeError, saying how to build it, when the emulation module is missing.
    """
    # a bad thread order is reported whether or not this build has the emulation module
    reverse = _thread_order_from_env() if reverse_threads is None else bool(reverse_threads)
    module = _emulation_module()
    previous_order = module.reverse_thread_order()
    module.set_reverse_thread_order(reverse)
    session = EmulatedCuda(module, reverse)
    module.enable()
    try:
        yield session
    finally:
        module.disable()
        module.set_reverse_thread_order(previous_order)
        session._close()
