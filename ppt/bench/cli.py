"""Command line of the benchmark suites: ``ppt bench`` and ``python -m ppt.bench``."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from ppt._device import resolve_device as usable_device
from ppt.bench.harness import Case, CaseResult, CorrectnessError, failed_result, measure
from ppt.bench.machine import CeilingProbes, Ceilings, ceiling_probes, describe, machine_info, measure_ceilings
from ppt.bench.plots import plot_suite
from ppt.bench.report import LEGEND, compare_with, derive, load_results, notes, table, write_results

# suite name -> module with SUITE, SUPPORTED_DTYPES, default_dtypes(device) and cases(device, dtype, quick);
# a module with DEVICES runs on those device types only
SUITES = {
    "point_ops": "ppt.bench.point_ops",
    "segment_norm": "ppt.bench.segment_norm",
    "sparse_conv": "ppt.bench.sparse_conv",
    "raster": "ppt.bench.raster",
    "models": "ppt.bench.models",
    "contention": "ppt.bench.contention",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_OUT = Path("ppt-bench-results")


def suite_description(name: str) -> str:
    """What suite ``name`` measures, its cases and targets: its module's docstring as plain text."""
    text = importlib.import_module(SUITES[name]).__doc__ or ""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)  # Sphinx roles -> their target
    return text.replace("``", "").strip()


class _HelpWithSuites(argparse.Action):
    """``-h``: the options, then what each suite named before it measures (``ppt bench models -h``)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.print_help()
        for name in dict.fromkeys(getattr(namespace, "suites", None) or ()):
            if name in SUITES:
                print(f"\nsuite {name}:\n\n{suite_description(name)}")
            else:
                print(f"\nno suite {name!r}; the suites are {', '.join(SUITES)}")
        parser.exit()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ppt bench``; ``parser`` must be made with ``add_help=False`` (its ``-h``
    also describes the suites named before it)."""
    parser.add_argument("-h", "--help", action=_HelpWithSuites,
                        help="show this help and exit; after SUITE names, also what those suites measure")
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"suites to run, any of {', '.join(SUITES)} (default: all; "
                             "ppt bench SUITE --help describes one)")
    parser.add_argument("--device", default=None, metavar="{cpu,cuda}",
                        help="cpu or cuda (default: cuda when ppt has CUDA kernels and a GPU is visible)")
    parser.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=None,
                        help="dtypes of the suites that take one (default: each suite's own, e.g. float32 on CPU, "
                             "float16 and bfloat16 for sparse convolution on CUDA)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats, speed targets not judged (about a minute on 2 CPU cores)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"directory for results.json, one PNG per suite and traces (default: ./{DEFAULT_OUT})")
    parser.add_argument("--profile", action="store_true",
                        help="write a torch.profiler Chrome trace of ppt's call per case and print its top kernels")
    parser.add_argument("--compare", type=Path, default=None, metavar="OLD.json",
                        help="print the change of every case against an earlier results.json")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="torch.set_num_threads(N) first")
    parser.add_argument("--case", default=None, metavar="TEXT",
                        help="run only the cases whose name contains TEXT (case-insensitive)")


def resolve_device(name: str | None) -> torch.device:
    """The device to run on; a one-line SystemExit for one that ppt or this build cannot use."""
    try:
        return usable_device(name, "--device")
    except ValueError as error:
        raise SystemExit(f"ppt bench: {error}") from None


def _command(args: argparse.Namespace, device: torch.device) -> str:
    """The command that reproduces this run, spelled out from the parsed arguments."""
    parts = ["ppt bench", *args.suites, f"--device {device.type}"]
    if args.dtype:
        parts.append("--dtype " + " ".join(args.dtype))
    if args.quick:
        parts.append("--quick")
    if args.threads:
        parts.append(f"--threads {args.threads}")
    if args.case:
        parts.append(f"--case {shlex.quote(args.case)}")
    parts.append(f"--out {args.out}")
    return " ".join(parts)


def _without_targets(result: CaseResult) -> CaseResult:
    """Quick runs use small inputs: the speed targets, set for the full sizes, are not judged."""
    baselines = [replace(b, target=None, meets_target=None, memory_target=None, meets_memory_target=None)
                 for b in result.baselines]
    return replace(result, baselines=baselines, ceiling_target=None)


def _probes_for(case: Case, probes: CeilingProbes) -> dict:
    """The ceiling probes timed in the rounds of ``case``: the GEMM of its dtype when it declares FLOPs,
    the copy when it declares bytes."""
    chosen = {}
    if case.flops is not None and case.dtype in probes.gemm:
        chosen["gemm_gflops"] = probes.gemm[case.dtype]
    if case.bytes is not None:
        chosen["copy_gbps"] = probes.copy
    return chosen


def _run_case(case: Case, suite: str, device: torch.device, probes: CeilingProbes,
              args: argparse.Namespace) -> CaseResult:
    try:
        result = measure(case, suite, device, _probes_for(case, probes))
    except (CorrectnessError, RuntimeError, ValueError) as error:
        return failed_result(case, suite, device, error)
    if args.profile:
        from ppt.bench.profiling import profile_case, trace_name

        print("\n".join([f"profile of {case.name} ({case.dtype}):",
                         *profile_case(case, device, args.out / "traces" / suite / trace_name(case))]), flush=True)
    return result


def _run_suite(name: str, module, dtypes: list[str], device: torch.device, probes: CeilingProbes,
               ceilings: Ceilings, machine: str, args: argparse.Namespace) -> tuple[dict, list[CaseResult]]:
    """Run one suite's cases, print its table and notes, draw its PNG; returns its summary and results."""
    print(f"\n== {name} on {device.type}{' (quick)' if args.quick else ''}", flush=True)
    results = []
    for dtype in dtypes:
        for case in module.cases(device, DTYPES[dtype], args.quick):
            if args.case and args.case.lower() not in case.name.lower():
                continue
            print(f"  {case.name} ({dtype})", file=sys.stderr, flush=True)
            result = _run_case(case, name, device, probes, args)
            derive(result, ceilings)
            results.append(_without_targets(result) if args.quick else result)
    summary = {"dtypes": dtypes, "cases": len(results)}
    if not results:
        print(f"{name}: no cases yet. {getattr(module, 'PENDING', '')}".rstrip(), flush=True)
        return summary, results
    print(table(results))
    for line in notes(results):
        print(line)
    figure = plot_suite(name, results, machine, args.out / f"{name}.png")
    summary["plot"] = figure.name if figure else None
    return summary, results


def run_from_args(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    names = list(dict.fromkeys(args.suites)) or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise SystemExit(f"ppt bench: unknown benchmark suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    old = load_results(args.compare) if args.compare else None  # fail on a bad file before running anything
    if args.threads:
        torch.set_num_threads(args.threads)
    modules = {name: importlib.import_module(SUITES[name]) for name in names}
    plan = {}
    for name, module in modules.items():
        devices = getattr(module, "DEVICES", None)
        if devices is not None and device.type not in devices:
            plan[name] = []
            print(f"{name}: skipped, it runs on {', '.join(devices)} only", flush=True)
            continue
        wanted = args.dtype or list(module.default_dtypes(device))
        plan[name] = [d for d in wanted if d in module.SUPPORTED_DTYPES]
        if not plan[name]:
            print(f"{name}: skipped, it runs in {', '.join(module.SUPPORTED_DTYPES)} only", flush=True)

    machine = machine_info(device)
    ceiling_dtypes = sorted({d for dtypes in plan.values() for d in dtypes})
    print(f"ppt bench on {device.type}: {describe(machine)}; measuring the machine's ceilings...", flush=True)
    probes = ceiling_probes(device, [DTYPES[d] for d in ceiling_dtypes], args.quick)
    ceilings = measure_ceilings(probes, args.quick)
    print("ceilings: " + ", ".join([f"GEMM {d} {g:.4g} GFLOP/s" for d, g in ceilings.gemm_gflops.items()]
                                   + [f"copy {ceilings.copy_gbps:.4g} GB/s"]), flush=True)

    all_results: list[CaseResult] = []
    suites: dict[str, dict] = {}
    for name, module in modules.items():
        if plan[name]:
            suites[name], results = _run_suite(name, module, plan[name], device, probes, ceilings, describe(machine),
                                               args)
            all_results += results

    path = write_results(args.out / "results.json", results=all_results, machine=machine, ceilings=ceilings,
                         command=_command(args, device), device=device.type, quick=args.quick, suites=suites)
    print(f"\n{LEGEND}")
    print(f"results: {path}; plots: " + (", ".join(str(args.out / s["plot"]) for s in suites.values() if s.get("plot"))
                                         or "none"))
    if args.quick:
        print("quick run: small sizes, speed targets not judged (they apply to the full sizes: "
              "ppt bench without --quick)")
    missed = sum((b.meets_target is False) + (b.meets_memory_target is False) for r in all_results for b in r.baselines)
    missed += sum(r.derived.get("meets_ceiling_target") is False for r in all_results)
    if missed:
        print(f"{missed} target(s) not met")
    if old is not None:
        print("\n" + compare_with(old, all_results, str(args.compare)))
    failed = [r for r in all_results if r.status == "failed"]
    if failed:
        print(f"{len(failed)} case(s) FAILED their correctness check or raised; see above")
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ppt.bench", description="ppt benchmark suites", add_help=False)
    add_arguments(parser)
    from ppt.cli import exit_with

    exit_with(lambda: run_from_args(parser.parse_args(argv)))
