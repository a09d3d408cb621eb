"""``ppt bench --profile``: a torch.profiler Chrome trace of ppt's call per case and its top kernels."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from ppt.bench.harness import Case, synchronize

PROFILED_CALLS = 3


def trace_name(case: Case) -> str:
    """A file name for the case: its name and dtype with anything unusual turned into '-'."""
    return re.sub(r"[^A-Za-z0-9_.=+]+", "-", f"{case.name} {case.dtype}").strip("-") + ".json"


def profile_case(case: Case, device: torch.device, trace_path: Path, top: int = 5) -> list[str]:
    """Profile ``PROFILED_CALLS`` calls of ppt's run, write the Chrome trace, return the top kernels
    (by self time on the device that did the work) as printable lines."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(PROFILED_CALLS):
            case.run()
        synchronize(device)
    trace_path.parent.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(trace_path))
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attribute, 0) > 0]
    total = sum(getattr(e, attribute) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attribute), reverse=True)
    lines = [f"  trace: {trace_path}"]
    for event in events[:top]:
        self_us = getattr(event, attribute)
        lines.append(f"    {100 * self_us / total:5.1f}%  {self_us / 1e3 / PROFILED_CALLS:9.3f} ms/call  "
                     f"{event.count // PROFILED_CALLS:>5}x per call  {event.key}")
    return lines
