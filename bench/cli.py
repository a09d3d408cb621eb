"""Command line of the benchmark suites, shared by ``python -m bench.<suite>`` and ``ppt bench``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path

import torch

from bench.harness import format_row, write_results

# suite name -> module exposing run(device, quick) -> list[Comparison]
SUITES = {
    "point_ops": "bench.point_ops",
    "segment_norm": "bench.segment_norm",
    "raster": "bench.raster",
    "sparse_conv": "bench.sparse_conv",
}

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK_RESULTS_DIR = Path(__file__).resolve().parent.parent / "build" / "bench-results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suites", nargs="*", metavar="suite",
                        help=f"suites to run, any of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for the JSON results (default: bench/results, "
                             "build/bench-results for --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before running")


def run_from_args(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out_dir = args.out or (QUICK_RESULTS_DIR if args.quick else RESULTS_DIR)
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        raise SystemExit(f"unknown benchmark suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    missed = 0
    for name in args.suites or list(SUITES):
        suite = importlib.import_module(SUITES[name])
        print(f"== {name} on {device}{' (quick)' if args.quick else ''}", flush=True)
        results = suite.run(device, quick=args.quick)
        if args.quick:  # the targets are set for the full sizes; a smoke run only shows the ratios
            results = [dataclasses.replace(result, target_speedup=None) for result in results]
        for result in results:
            print(format_row(result), flush=True)
            missed += result.meets_target is False
        suffix = "-quick" if args.quick else ""
        path = write_results(results, out_dir / f"{name}-{device.type}{suffix}.json", device)
        print(f"results written to {path}")
    if missed:
        print(f"{missed} case(s) below their speed target")
    if args.quick:
        print("quick run: small sizes, speed targets not checked (they apply to the full run, `ppt bench`)")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="ppt benchmark suites")
    add_arguments(parser)
    raise SystemExit(run_from_args(parser.parse_args(argv)))
