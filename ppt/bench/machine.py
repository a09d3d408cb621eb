"""What the run measures about the machine before the suites: its description and its ceilings.

The ceilings are what this machine reaches on the two workloads every kernel is bounded by: a
large dense GEMM per dtype (``torch.mm``, GFLOP/s) and a device-to-device tensor copy (GB/s, read
plus write), each the fastest of several calls after a warm-up (a ceiling is the best the machine
does, so a call slowed by other load must not lower it). A case that declares its FLOPs or bytes
is reported as a fraction of them.
"""

from __future__ import annotations

import os
import platform
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


def fastest_seconds(fn, device: torch.device, *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    return min(time_once(fn, device) for _ in range(repeats))


def measure_ceilings(device: torch.device, dtypes: list[torch.dtype], quick: bool) -> Ceilings:
    # Large enough for the BLAS to reach its rate with every thread (1024 does not on 2 CPU cores).
    n = 8192 if device.type == "cuda" else 2048
    repeats = 5 if quick else 10
    ceilings = Ceilings(gemm_size=n)
    for dtype in dtypes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        seconds = fastest_seconds(lambda: torch.mm(a, b, out=out), device, warmup=3, repeats=repeats)
        ceilings.gemm_gflops[str(dtype).removeprefix("torch.")] = 2 * n**3 / seconds / 1e9
    num_bytes = (128 if quick else 512) * 2**20  # far beyond the caches
    src = torch.empty(num_bytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    seconds = fastest_seconds(lambda: dst.copy_(src), device, warmup=2, repeats=repeats)
    ceilings.copy_gbps = 2 * num_bytes / seconds / 1e9
    ceilings.copy_bytes = num_bytes
    return ceilings


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
