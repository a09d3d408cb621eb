"""The ``ppt`` command: ``ppt info`` describes the build, ``ppt bench`` runs benchmark suites,
``ppt data`` generates datasets, ``ppt train`` / ``eval`` / ``predict`` train and use models.

"""

from __future__ import annotations

import argparse
import sys


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppt", description="ppt: fused point-cloud kernels and models")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    info = commands.add_parser("info", help="show what this build of ppt contains")
    info.set_defaults(handler=_print_info)

    from ppt.bench import cli as bench_cli

    bench = commands.add_parser("bench", help="benchmark ppt kernels against their alternatives",
                                description="Benchmark ppt's kernels against their alternatives on this machine.")
    bench_cli.add_arguments(bench)
    bench.set_defaults(handler=bench_cli.run_from_args)

    from ppt.data.cli import add_data_command

    add_data_command(commands)

    from ppt.text.cli import add_text_command

    add_text_command(commands)

    from ppt.engine.cli import add_engine_commands

    add_engine_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise SystemExit(args.handler(args))
