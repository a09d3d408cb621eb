"""Render committed benchmark JSON (bench/results/*.json) as Markdown tables for docs/benchmarks.md.

Run: ``python -m bench.summarize [FILE ...]`` (default: every file in bench/results).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.cli import RESULTS_DIR


def render(path: Path) -> str:
    payload = json.loads(path.read_text())
    machine = payload["machine"]
    where = machine.get("gpu") or f"{machine['cpu']}, {machine['torch_threads']} threads"
    lines = [
        f"### {path.stem} ({payload['date'][:10]}, {where}, torch {machine['torch']})",
        "",
        "| case | ppt ms | baseline | baseline ms | speedup | target |",
        "|---|---:|---|---:|---:|---|",
    ]
    for r in payload["results"]:
        target = "" if r["target_speedup"] is None else (
            f"≥ {r['target_speedup']:.3g}× {'met' if r['meets_target'] else '**not met**'}")
        lines.append(f"| {r['case']} | {r['ppt_ms']:.3f} | {r['baseline_name']} | {r['baseline_ms']:.3f} | "
                     f"{r['speedup']:.2f}× | {target} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    paths = [Path(p) for p in argv] or sorted(RESULTS_DIR.glob("*.json"))
    print("\n".join(render(p) for p in paths))


if __name__ == "__main__":
    main(sys.argv[1:])
