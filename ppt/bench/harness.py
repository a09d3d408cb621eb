"""Timing harness shared by the benchmark suites.

A suite describes each measurement as a :class:`Case`: ppt's call, the baselines it is compared
with (or :class:`Unavailable` entries saying why a baseline is absent and how to install it), the
correctness checks, and the work one call does (FLOPs, bytes, items) from which the report derives
throughput and the fraction of the machine's ceilings. :func:`measure` runs the correctness gate
first (a case whose results disagree is never timed), warms every side up, times them in
interleaved rounds in the same process and reports the median and spread of each.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ppt._extras import install_hint


def bench_extra_hint() -> str:
    """How to install the baselines of ppt's ``bench`` extra."""
    return install_hint("bench")


class CorrectnessError(AssertionError):
    """ppt's result disagrees with a reference or baseline: the case is not timed."""


@dataclass
class Baseline:
    """An alternative to ppt's call, timed in the same rounds.

    ``check(ppt_output, baseline_output)`` raises when the two disagree; ``None`` makes the
    baseline timing-only (the case must then be checked some other way). ``target`` is the
    speedup over this baseline that ppt is expected to reach (baseline time / ppt time);
    ``memory_target`` the largest ratio of ppt's peak memory to this baseline's that is expected;
    ``repeats`` caps the timed rounds of a very slow baseline.
    """

    name: str
    run: Callable[[], Any]
    check: Callable[[Any, Any], None] | None = None
    target: float | None = None
    repeats: int | None = None
    memory_target: float | None = None


@dataclass
class Unavailable:
    """A baseline that cannot run here: reported as skipped with ``reason`` and ``hint``."""

    name: str
    reason: str
    hint: str = ""


@dataclass
class Case:
    """One measurement: ppt's ``run`` against ``baselines`` on the same inputs.

    ``check(ppt_output)`` verifies ppt's result on its own (against a reference, or a property
    such as determinism). At least one of ``check`` and the baselines' checks must exist.
    ``flops`` (useful floating-point operations of one call) and ``bytes`` (the least memory
    traffic of one call) give GFLOP/s and GB/s against the run's ceilings; ``items`` = (count per
    call, unit) gives throughput. ``ceiling_target`` is the fraction of the ceiling expected.
    ``cpu_memory`` also records the peak resident memory of one call on CPU (peak memory is always
    recorded on CUDA). ``condition`` makes the load the case runs under (e.g. busy processes): a
    context manager entered around the whole measurement (correctness check, warm-up, rounds); the
    dict it yields, complete when it exits, is added to the result's ``params``.
    """

    name: str
    run: Callable[[], Any]
    baselines: Sequence[Baseline | Unavailable] = ()
    check: Callable[[Any], None] | None = None
    params: dict = field(default_factory=dict)
    dtype: str = "float32"
    flops: float | None = None
    bytes: float | None = None
    items: tuple[float, str] | None = None
    warmup: int = 2
    repeats: int = 10
    ceiling_target: float | None = None
    cpu_memory: bool = False
    condition: Callable[[], contextlib.AbstractContextManager[dict]] | None = None


@dataclass
class Timing:
    median_ms: float
    spread: float  # interquartile range / median of the rounds (0 with a single round)
    times_ms: list[float]
    # peak memory of one call beyond what was in use before it: CUDA allocations; on CPU (cases with
    # cpu_memory) the process's resident memory; None when not measured
    peak_bytes: int | None


@dataclass
class BaselineResult:
    name: str
    status: str  # "ok" or "skipped"
    timing: Timing | None = None
    speedup: float | None = None  # baseline time / ppt time: > 1 means ppt is faster
    target: float | None = None
    meets_target: bool | None = None
    memory_ratio: float | None = None  # ppt's peak memory / this baseline's
    memory_target: float | None = None
    meets_memory_target: bool | None = None
    checked: bool = False  # whether ppt's output was checked against this baseline's
    reason: str = ""
    hint: str = ""


@dataclass
class CaseResult:
    suite: str
    case: str
    device: str
    dtype: str
    params: dict
    status: str  # "ok" or "failed" (correctness gate or an error in ppt's call)
    ppt: Timing | None = None
    baselines: list[BaselineResult] = field(default_factory=list)
    flops: float | None = None
    bytes: float | None = None
    items: float | None = None
    item_unit: str | None = None
    ceiling_target: float | None = None
    error: str = ""
    # best rate of each ceiling probe timed in the case's rounds: "gemm_gflops", "copy_gbps"
    ceilings: dict = field(default_factory=dict)
    # filled by the report from these ceilings (else the run's)
    derived: dict = field(default_factory=dict)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of one call of ``fn``, synchronized on CUDA."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _PROC_STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{_PROC_STATUS} has no {field}")
    return int(match.group(1))


def _return_free_heap() -> None:
    """Hand glibc's free heap pages back to the system (no-op with another C library)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_resident_bytes(fn: Callable[[], Any]) -> int | None:
    """Peak resident memory (RSS) of this process during one call of ``fn`` beyond what was resident
    before it; None where the kernel does not offer it (it needs Linux's /proc).

    The kernel's own high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) is read,
    so no short-lived peak is missed. Free heap memory is returned to the system first, so the
    figure counts what the call touches, not what earlier calls left in the allocator's free lists.
    Other processes on the machine do not affect it.
    """
    try:
        _return_free_heap()
        _PROC_CLEAR_REFS.write_text("5")  # 5: reset the peak RSS to the current RSS
        before = _status_kib("VmRSS")
        fn()
        return 1024 * max(0, _status_kib("VmHWM") - before)
    except OSError:
        return None


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device, cpu: bool = False) -> int | None:
    """Peak memory of one call beyond what was in use before: CUDA allocations on a GPU; the
    process's resident memory on CPU when ``cpu`` (:func:`peak_resident_bytes`), else None."""
    if device.type != "cuda":
        return peak_resident_bytes(fn) if cpu else None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(count)`` (unchanged for None)."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _timing(seconds: list[float], peak: int | None) -> Timing:
    times_ms = [1e3 * s for s in seconds]
    median = statistics.median(times_ms)
    spread = 0.0
    if len(times_ms) > 1:
        q1, _, q3 = statistics.quantiles(times_ms, n=4, method="inclusive")
        spread = (q3 - q1) / median
    return Timing(median_ms=median, spread=spread, times_ms=times_ms, peak_bytes=peak)


def _gate(case: Case, baselines: list[Baseline]) -> tuple[list[Baseline], list[BaselineResult]]:
    """Run every correctness check before any timing. Returns the baselines that ran and those
    that could not (a baseline raising an error other than a failed check is reported skipped)."""
    if case.check is None and not any(b.check for b in baselines):
        raise ValueError(f"benchmark case {case.name!r} has no correctness check")
    output = case.run()
    if case.check is not None:
        try:
            case.check(output)
        except AssertionError as error:
            raise CorrectnessError(f"{case.name}: ppt's result is wrong: {error}") from error
    ran, failed = [], []
    for baseline in baselines:
        try:
            expected = baseline.run()
        except Exception as error:  # noqa: BLE001 - a broken baseline is reported, not fatal
            failed.append(BaselineResult(name=baseline.name, status="skipped",
                                         reason=f"failed to run: {type(error).__name__}: {error}".splitlines()[0]))
            continue
        if baseline.check is not None:
            try:
                baseline.check(output, expected)
            except AssertionError as error:
                raise CorrectnessError(f"{case.name}: ppt's result disagrees with {baseline.name}: {error}") from error
        ran.append(baseline)
    if case.check is None and not any(b.check for b in ran):
        raise CorrectnessError(f"{case.name}: no baseline that checks ppt's result could run")
    return ran, failed


def measure(case: Case, suite: str, device: torch.device,
            ceiling_probes: Mapping[str, Callable[[], float]] | None = None) -> CaseResult:
    """Check, warm up and time ``case`` (under its ``condition``); raises :class:`CorrectnessError`
    when a check fails. Each of ``ceiling_probes`` (name -> one call returning the rate it reached)
    is called once per round too; the result's ``ceilings`` keep each one's best rate."""
    with case.condition() if case.condition is not None else contextlib.nullcontext({}) as observed:
        result = _measure(case, suite, device, ceiling_probes or {})
    result.params = {**result.params, **observed}
    return result


def _measure(case: Case, suite: str, device: torch.device, probes: Mapping[str, Callable[[], float]]) -> CaseResult:
    available = [b for b in case.baselines if isinstance(b, Baseline)]
    ran, failed = _gate(case, available)
    for fn in [case.run, *(b.run for b in ran), *probes.values()]:
        for _ in range(case.warmup):
            fn()
    # Interleaved rounds: drifts of the machine (clock boost, other load) hit every side alike.
    ppt_seconds: list[float] = []
    baseline_seconds: dict[str, list[float]] = {b.name: [] for b in ran}
    ceilings: dict[str, float] = {}
    for round_ in range(case.repeats):
        ppt_seconds.append(time_once(case.run, device))
        for b in ran:
            if b.repeats is None or round_ < b.repeats:
                baseline_seconds[b.name].append(time_once(b.run, device))
        for name, probe in probes.items():
            ceilings[name] = max(ceilings.get(name, 0.0), probe())
    ppt = _timing(ppt_seconds, peak_memory_bytes(case.run, device, case.cpu_memory))
    results: dict[str, BaselineResult] = {r.name: r for r in failed}
    for b in ran:
        timing = _timing(baseline_seconds[b.name], peak_memory_bytes(b.run, device, case.cpu_memory))
        speedup = timing.median_ms / ppt.median_ms
        memory_ratio = (ppt.peak_bytes / timing.peak_bytes
                        if ppt.peak_bytes is not None and timing.peak_bytes else None)
        results[b.name] = BaselineResult(
            name=b.name, status="ok", timing=timing, speedup=speedup, target=b.target,
            meets_target=None if b.target is None else speedup >= b.target, memory_ratio=memory_ratio,
            memory_target=b.memory_target,
            meets_memory_target=(None if b.memory_target is None or memory_ratio is None
                                 else memory_ratio <= b.memory_target),
            checked=b.check is not None)
    for b in case.baselines:
        if isinstance(b, Unavailable):
            results[b.name] = BaselineResult(name=b.name, status="skipped", reason=b.reason, hint=b.hint)
    return CaseResult(
        suite=suite, case=case.name, device=str(device), dtype=case.dtype, params=case.params, status="ok",
        ppt=ppt, baselines=[results[b.name] for b in case.baselines], flops=case.flops, bytes=case.bytes,
        items=case.items[0] if case.items else None, item_unit=case.items[1] if case.items else None,
        ceiling_target=case.ceiling_target, ceilings=ceilings)


def failed_result(case: Case, suite: str, device: torch.device, error: BaseException) -> CaseResult:
    """The record of a case whose correctness gate (or ppt call) failed."""
    return CaseResult(suite=suite, case=case.name, device=str(device), dtype=case.dtype, params=case.params,
                      status="failed", error=f"{type(error).__name__}: {error}",
                      baselines=[BaselineResult(name=b.name, status="skipped", reason="case failed")
                                 for b in case.baselines])
