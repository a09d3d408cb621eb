"""Timing harness shared by the benchmark suites.

Every comparison checks the candidate against its baseline first, warms both up, reports the
median of repeated timings of each (measured in the same process, interleaved) and their ratio,
and records peak memory on CUDA. Results are written as JSON together with the machine, torch
version, ppt build and date, so committed files say where a figure came from.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import ppt


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, *, warmup: int, repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Peak CUDA memory allocated during one call beyond what was allocated before (None on CPU)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


@dataclass
class Comparison:
    """One benchmark case: ``ppt`` against ``baseline_name`` on the same inputs."""

    suite: str
    case: str
    device: str
    params: dict
    baseline_name: str
    ppt_ms: float
    baseline_ms: float
    speedup: float  # baseline time / ppt time: > 1 means ppt is faster
    ppt_times_ms: list[float] = field(repr=False)
    baseline_times_ms: list[float] = field(repr=False)
    ppt_peak_bytes: int | None = None
    baseline_peak_bytes: int | None = None
    target_speedup: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def meets_target(self) -> bool | None:
        return None if self.target_speedup is None else self.speedup >= self.target_speedup


def compare(
    *,
    suite: str,
    case: str,
    device: torch.device,
    params: dict,
    candidate: Callable[[], Any],
    baseline: Callable[[], Any],
    baseline_name: str,
    check: Callable[[Any, Any], None],
    warmup: int = 3,
    repeats: int = 10,
    target_speedup: float | None = None,
    extra: dict | None = None,
) -> Comparison:
    """Check ``candidate()`` against ``baseline()`` with ``check``, then time both.

    The two are timed in alternating rounds so that drifts of the machine (turbo, other load)
    hit both alike; each side reports the median of its rounds.
    """
    check(candidate(), baseline())
    for _ in range(warmup):
        candidate()
        baseline()
    ppt_times, base_times = [], []
    for _ in range(repeats):
        ppt_times += time_call(candidate, device, warmup=0, repeats=1)
        base_times += time_call(baseline, device, warmup=0, repeats=1)
    ppt_ms = 1e3 * statistics.median(ppt_times)
    base_ms = 1e3 * statistics.median(base_times)
    return Comparison(
        suite=suite,
        case=case,
        device=str(device),
        params=params,
        baseline_name=baseline_name,
        ppt_ms=ppt_ms,
        baseline_ms=base_ms,
        speedup=base_ms / ppt_ms,
        ppt_times_ms=[1e3 * t for t in ppt_times],
        baseline_times_ms=[1e3 * t for t in base_times],
        ppt_peak_bytes=peak_memory_bytes(candidate, device),
        baseline_peak_bytes=peak_memory_bytes(baseline, device),
        target_speedup=target_speedup,
        extra=extra or {},
    )


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
        info["cuda_runtime"] = torch.version.cuda
    return info


def format_row(result: Comparison) -> str:
    target = ""
    if result.target_speedup is not None:
        target = f"  target >= {result.target_speedup:g}x: {'met' if result.meets_target else 'NOT met'}"
    return (
        f"{result.suite:<10} {result.case:<44} {result.device:<5} ppt {result.ppt_ms:9.3f} ms  "
        f"{result.baseline_name} {result.baseline_ms:9.3f} ms  speedup {result.speedup:6.2f}x{target}"
    )


def write_results(results: list[Comparison], path: Path, device: torch.device, note: str = "") -> Path:
    """Write ``results`` as JSON with machine, torch/ppt build and UTC date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(device),
        "note": note,
        "results": [asdict(r) | {"meets_target": r.meets_target} for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
