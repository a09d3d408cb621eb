"""What the run measures about the machine before the suites: its description and its ceilings.

The ceilings are what this machine reaches on the two workloads every kernel is bounded by: a
large dense GEMM per dtype (``torch.mm``, GFLOP/s) and a device-to-device tensor copy (GB/s, read
plus write). The run measures them at its start, each the fastest of several calls after a warm-up,
and again in every round of a case that declares its FLOPs or bytes (:class:`CeilingProbes`): the
case is reported as a fraction of the best rate the probe reached during its own rounds, so a
machine whose load changes during the run (other jobs) moves the case and its ceiling alike.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

import ppt
from ppt.bench.harness import time_once


@dataclass
class Ceilings:
    gemm_gflops: dict[str, float] = field(default_factory=dict)  # dtype name -> GFLOP/s of torch.mm
    gemm_size: int = 0  # n of the n x n x n GEMM
    copy_gbps: float = 0.0  # GB/s of a tensor copy (bytes read + written)
    copy_bytes: int = 0  # size of the copied tensor


@dataclass
class CeilingProbes:
    """One call of each ceiling workload, returning the rate it reached: ``gemm[dtype]()`` in GFLOP/s
    (a large ``torch.mm``), ``copy()`` in GB/s (a tensor copy far beyond the caches, bytes read +
    written). The run measures them at its start, and again in every round of a case that declares
    its FLOPs or bytes, so that the case's fraction of the ceiling compares rates the machine gave
    at the same time (a ceiling measured once, while other jobs held the cores, is no ceiling)."""

    device: torch.device
    gemm: dict[str, Callable[[], float]]
    copy: Callable[[], float]
    gemm_size: int
    copy_bytes: int


def ceiling_probes(device: torch.device, dtypes: list[torch.dtype], quick: bool) -> CeilingProbes:
    # Large enough for the BLAS to reach its rate with every thread (1024 does not on 2 CPU cores).
    n = 8192 if device.type == "cuda" else 2048

    def gemm(dtype: torch.dtype) -> Callable[[], float]:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        return lambda: 2 * n**3 / time_once(lambda: torch.mm(a, b, out=out), device) / 1e9

    num_bytes = (128 if quick else 512) * 2**20  # far beyond the caches
    src = torch.empty(num_bytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    return CeilingProbes(device=device, gemm={str(d).removeprefix("torch."): gemm(d) for d in dtypes},
                         copy=lambda: 2 * num_bytes / time_once(lambda: dst.copy_(src), device) / 1e9,
                         gemm_size=n, copy_bytes=num_bytes)


def measure_ceilings(probes: CeilingProbes, quick: bool) -> Ceilings:
    """The ceilings at the start of the run: each probe's best rate over several calls after a warm-up."""
    repeats = 5 if quick else 10

    def best(probe: Callable[[], float], warmup: int) -> float:
        for _ in range(warmup):
            probe()
        return max(probe() for _ in range(repeats))

    return Ceilings(gemm_gflops={dtype: best(probe, 3) for dtype, probe in probes.gemm.items()},
                    gemm_size=probes.gemm_size, copy_gbps=best(probes.copy, 2), copy_bytes=probes.copy_bytes)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: torch.device) -> dict:
    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "ppt": ppt.build_info(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_bytes"] = torch.cuda.get_device_properties(device).total_memory
        info["cuda_runtime"] = torch.version.cuda
    return info


def describe(machine: dict) -> str:
    """One line naming the processor a result file was measured on."""
    if "gpu" in machine:
        return f"{machine['gpu']}, torch {machine['torch']}"
    return f"{machine['cpu']}, {machine['torch_threads']} threads, torch {machine['torch']}"
