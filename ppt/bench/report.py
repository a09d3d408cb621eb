"""What a run reports: derived figures, the terminal table, results.json and the comparison with an
earlier results file."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from ppt.bench.harness import BaselineResult, CaseResult, Timing
from ppt.bench.machine import Ceilings

SCHEMA = "ppt-bench/2"
# A ppt time that moved by more than this fraction is flagged by --compare.
CHANGE_THRESHOLD = 0.10


def derive(result: CaseResult, ceilings: Ceilings) -> None:
    """Fill ``result.derived`` with throughput and the achieved fraction of the machine's ceilings:
    those measured in the case's own rounds (``result.ceilings``), else the run's ``ceilings``."""
    if result.ppt is None:
        return
    seconds = result.ppt.median_ms / 1e3
    derived: dict = {}
    if result.items is not None:
        derived["throughput_per_s"] = result.items / seconds
    fractions = []
    if result.flops is not None:
        derived["gflops"] = result.flops / seconds / 1e9
        ceiling = result.ceilings.get("gemm_gflops") or ceilings.gemm_gflops.get(result.dtype)
        if ceiling:
            derived["gemm_fraction"] = derived["gflops"] / ceiling
            fractions.append(derived["gemm_fraction"])
    if result.bytes is not None:
        derived["gbps"] = result.bytes / seconds / 1e9
        ceiling = result.ceilings.get("copy_gbps") or ceilings.copy_gbps
        if ceiling:
            derived["copy_fraction"] = derived["gbps"] / ceiling
            fractions.append(derived["copy_fraction"])
    if result.ceiling_target is not None and fractions:
        derived["meets_ceiling_target"] = max(fractions) >= result.ceiling_target
    result.derived = derived


# ---------------------------------------------------------------------------------------------
# terminal table


def _si(value: float) -> str:
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.3g} "


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 100 else f"{value:.1f}"


def _mib(num_bytes: int | None) -> str:
    return "" if num_bytes is None else f"{num_bytes / 2**20:.1f}"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.1f}%"


def _achieved(result: CaseResult) -> tuple[str, str]:
    d = result.derived
    if "gflops" in d:
        rate = f"{d['gflops']:.3g} GFLOP/s"
        fraction = f"{_percent(d['gemm_fraction'])} of GEMM" if "gemm_fraction" in d else ""
    elif "gbps" in d:
        rate = f"{d['gbps']:.3g} GB/s"
        fraction = f"{_percent(d['copy_fraction'])} of copy" if "copy_fraction" in d else ""
    else:
        return "", ""
    if result.ceiling_target is not None:
        fraction += f" (≥{100 * result.ceiling_target:.0f}%: {'met' if d.get('meets_ceiling_target') else 'NOT met'})"
    return rate, fraction


def _target(baseline) -> str:
    parts = []
    if baseline.target is not None and baseline.meets_target is not None:
        parts.append(f"≥{baseline.target:.3g}x {'met' if baseline.meets_target else 'NOT met'}")
    if baseline.memory_target is not None and baseline.meets_memory_target is not None:
        parts.append(f"memory {baseline.memory_ratio:.2f}x (≤{baseline.memory_target:.3g}x "
                     f"{'met' if baseline.meets_memory_target else 'NOT met'})")
    return "; ".join(parts)


def aligned(header: Sequence[str], rows: Iterable[Sequence[str]], right: set[int]) -> str:
    """Rows padded to the widest cell of each column (``right``: right-aligned columns)."""
    rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)


def _cells(results: Sequence[CaseResult]) -> tuple[list[str], list[list[str]], set[int]]:
    """Header, rows and right-aligned columns of the results table: one row per (case, baseline),
    the case's own columns filled on its first row only."""
    show_dtype = len({r.dtype for r in results}) > 1
    show_peak = any(r.ppt is not None and r.ppt.peak_bytes is not None for r in results)
    header = ["case", *(["dtype"] if show_dtype else []), "ppt ms", "spread", "throughput", "achieved",
              "of ceiling", *(["peak MiB"] if show_peak else []), "baseline", "baseline ms",
              *(["baseline MiB"] if show_peak else []), "speedup", "target"]
    rows = []
    for r in results:
        if r.ppt is None:
            first = [r.case, *([r.dtype] if show_dtype else []), "FAILED", "", "", "", "",
                     *([""] if show_peak else [])]
        else:
            rate, fraction = _achieved(r)
            throughput = (f"{_si(r.derived['throughput_per_s'])}{r.item_unit}/s"
                          if "throughput_per_s" in r.derived else "")
            peak = [_mib(r.ppt.peak_bytes)] if show_peak else []
            first = [r.case, *([r.dtype] if show_dtype else []), _ms(r.ppt.median_ms),
                     f"±{50 * r.ppt.spread:.0f}%", throughput, rate, fraction, *peak]
        blank = [""] * len(first)
        for i, b in enumerate(r.baselines or [None]):
            prefix = first if i == 0 else blank
            if b is None:
                rows.append([*prefix, "", "", *([""] if show_peak else []), "", ""])
            elif b.status == "ok":
                peak = [_mib(b.timing.peak_bytes)] if show_peak else []
                rows.append([*prefix, b.name, _ms(b.timing.median_ms), *peak, f"{b.speedup:.2f}x", _target(b)])
            else:
                rows.append([*prefix, b.name, "skipped", *([""] if show_peak else []), "", ""])
    right = {header.index(c) for c in ("ppt ms", "spread", "baseline ms", "speedup", "peak MiB", "baseline MiB")
             if c in header}
    return header, rows, right


def table(results: Sequence[CaseResult]) -> str:
    """The terminal table, columns padded to their widest cell."""
    return aligned(*_cells(results))


def markdown_table(results: Sequence[CaseResult]) -> str:
    """The same table in Markdown (docs/benchmarks.md)."""
    header, rows, right = _cells(results)
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, rule, *rows])


def notes(results: Sequence[CaseResult]) -> list[str]:
    """Lines under the table: failed cases, and every skipped baseline once with its reason and hint."""
    lines = [f"FAILED {r.case} ({r.dtype}): {r.error}" for r in results if r.status == "failed"]
    seen = set()
    for r in results:
        for b in r.baselines:
            if b.status == "skipped" and b.reason != "case failed" and (b.name, b.reason) not in seen:
                seen.add((b.name, b.reason))
                lines.append(f"skipped baseline {b.name}: {b.reason}" + (f"; install: {b.hint}" if b.hint else ""))
    return lines


LEGEND = ("speedup = baseline time / ppt time (> 1: ppt is faster); spread = interquartile range of the rounds "
          "(± half of it, relative to the median); of ceiling = achieved rate / the best rate of a large torch.mm "
          "(GFLOP/s, same dtype) or of a tensor copy (GB/s) timed in the case's own rounds; above 100% of copy, "
          "the working set stayed in cache")


# ---------------------------------------------------------------------------------------------
# results.json


def write_results(path: Path, *, results: Sequence[CaseResult], machine: dict, ceilings: Ceilings, command: str,
                  device: str, quick: bool, suites: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "schema": SCHEMA,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "device": device,
        "quick": quick,
        "machine": machine,
        "ceilings": asdict(ceilings),
        "suites": suites,
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def load_results(path: Path) -> dict:
    """A results file written by :func:`write_results`; a clear error for anything else."""
    try:
        payload = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SystemExit(f"ppt bench: results file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise SystemExit(f"ppt bench: {path} is not JSON ({error})") from None
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise SystemExit(f"ppt bench: {path} is not a ppt bench results file (expected \"schema\": \"{SCHEMA}\")")
    return payload


def case_results(payload: dict) -> list[CaseResult]:
    """The records of a results file as :class:`CaseResult` objects (to redraw its table and plots)."""
    def timing(value):
        return None if value is None else Timing(**value)

    results = []
    for row in payload["results"]:
        baselines = [BaselineResult(**(b | {"timing": timing(b["timing"])})) for b in row["baselines"]]
        results.append(CaseResult(**(row | {"ppt": timing(row["ppt"]), "baselines": baselines})))
    return results


def _key(row: dict) -> tuple:
    return row["suite"], row["case"], row["dtype"], row["device"].split(":")[0]


def compare_with(old: dict, results: Sequence[CaseResult], old_name: str) -> str:
    """Per case present in both runs: ppt's median time before and now and the relative change."""
    before = {_key(row): row for row in old["results"] if row["status"] == "ok"}
    rows, slower, faster, compared = [], 0, 0, 0
    for r in results:
        row = before.get(_key(asdict(r)))
        if row is None or r.ppt is None:
            continue
        compared += 1
        old_ms, new_ms = row["ppt"]["median_ms"], r.ppt.median_ms
        change = new_ms / old_ms - 1
        verdict = ""
        if change > CHANGE_THRESHOLD:
            verdict, slower = "slower", slower + 1
        elif change < -CHANGE_THRESHOLD:
            verdict, faster = "faster", faster + 1
        rows.append([r.suite, r.case, r.dtype, _ms(old_ms), _ms(new_ms), f"{100 * change:+.1f}%", verdict])
    header = ["suite", "case", "dtype", "before ms", "now ms", "change", ""]
    lines = [f"== compared with {old_name} ({old['date'][:10]}, {old['device']}, "
             f"{'quick' if old.get('quick') else 'full'} run)"]
    if rows:
        lines.append(aligned(header, rows, right={3, 4, 5}))
    lines.append(f"{compared} case(s) in both runs: {slower} slower and {faster} faster by more than "
                 f"{100 * CHANGE_THRESHOLD:.0f}%")
    return "\n".join(lines)
