"""Redraw a results file: Markdown tables for docs/benchmarks.md and, with ``--plots DIR``, the PNGs.

Run: ``python -m ppt.bench.summarize RESULTS.json [--plots DIR] [--suites SUITE ...]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppt.bench.machine import describe
from ppt.bench.plots import plot_suite
from ppt.bench.report import case_results, load_results, markdown_table, notes


def render(path: Path, plots: Path | None = None, suites: list[str] | None = None) -> str:
    payload = load_results(path)
    results = case_results(payload)
    machine = describe(payload["machine"])
    ceilings = payload["ceilings"]
    rates = ", ".join(f"GEMM {dtype} {rate:.4g} GFLOP/s" for dtype, rate in ceilings["gemm_gflops"].items())
    sections = [f"Command: `{payload['command']}` ({payload['date'][:10]}, {machine}); "
                f"ceilings: {rates}, copy {ceilings['copy_gbps']:.4g} GB/s."]
    for suite in payload["suites"]:
        if suites and suite not in suites:
            continue
        rows = [r for r in results if r.suite == suite]
        if not rows:
            continue
        sections.append(f"### {suite} ({payload['device']})\n\n{markdown_table(rows)}")
        sections += [f"- {line}" for line in notes(rows)]
        if plots is not None:
            plot_suite(suite, rows, machine, plots / f"{suite}.png")
    return "\n\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ppt.bench.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="results.json files written by ppt bench")
    parser.add_argument("--plots", type=Path, default=None, help="also redraw each suite's PNG into this folder")
    parser.add_argument("--suites", nargs="+", default=None, metavar="SUITE", help="only these suites (default: all)")
    args = parser.parse_args(argv)
    print("\n".join(render(path, args.plots, args.suites) for path in args.results))


if __name__ == "__main__":
    main()
