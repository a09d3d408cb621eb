"""The ``ppt`` command: ``ppt info`` describes the build, ``ppt bench`` runs benchmark suites.

Later subcommands (``train``, ``eval``, ``data``) register on the same parser through
:func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ppt.data.objects_cli import add_synth_objects_parser


def _print_info(_: argparse.Namespace) -> int:
    import torch

    import ppt

    info = ppt.build_info()
    rows = [
        ("ppt", info["version"]),
        ("built against torch", info["torch"]),
        ("running torch", info["torch_runtime"]),
        ("CUDA kernels", "yes" if info["cuda"] else "no"),
        ("CUDA archs", ", ".join(info["cuda_archs"]) or "-"),
        ("GPU visible", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no"),
        ("OpenMP", "yes" if info["openmp"] else "no"),
        ("CPU kernels", info["cpu_kernels"]),
        ("CPU threads", str(torch.get_num_threads())),
        ("ops", ", ".join(info["ops"])),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if info["cuda"] and not torch.cuda.is_available():
        print("note: CUDA kernels were built but torch sees no GPU; ops run on CPU only", file=sys.stderr)
    return 0


def _bench_cli():
    """bench/cli.py of the source checkout (benchmarks are not shipped inside the wheel), or None."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "cli.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import bench.cli

    return bench.cli


def _bench_unavailable(_: argparse.Namespace) -> int:
    raise SystemExit(
        "ppt bench runs the suites in the source checkout's bench/ directory, which is not next to "
        f"{Path(__file__).resolve().parent}. Install ppt from a clone with "
        "'pip install --no-build-isolation -e .' and run it there."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppt", description="ppt: fused point-cloud kernels and models")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    info = commands.add_parser("info", help="show what this build of ppt contains")
    info.set_defaults(handler=_print_info)

    bench = commands.add_parser("bench", help="benchmark ppt kernels against their alternatives")
    bench_cli = _bench_cli()
    if bench_cli is None:
        bench.set_defaults(handler=_bench_unavailable)
    else:
        bench_cli.add_arguments(bench)
        bench.set_defaults(handler=bench_cli.run_from_args)

    data = commands.add_parser("data", help="prepare datasets (synthetic data for the recipes)")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="data_command")
    add_synth_objects_parser(data_commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.handler is not _bench_unavailable:  # that one explains itself instead
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    raise SystemExit(args.handler(args))
