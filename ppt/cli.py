"""The ``ppt`` command: ``ppt info`` describes the build, ``ppt bench`` runs benchmark suites,
``ppt data`` generates datasets, ``ppt train`` / ``eval`` / ``predict`` train and use models.

"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn


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
        ("CUDA emulation", "yes (ppt.testing.emulated_cuda)" if info["emulation"] else "no"),
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

    bench = commands.add_parser("bench", help="benchmark ppt kernels against their alternatives", add_help=False,
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


CLOSED_PIPE_STATUS = 128 + 13  # 128 + SIGPIPE: the status a shell reports for a tool ended by a closed pipe


def exit_with(command: Callable[[], int | None]) -> NoReturn:
    """Exit with ``command()``'s status. When the reader of the output goes away (``ppt train
    --list | head -1``) the command ends quietly with :data:`CLOSED_PIPE_STATUS`, not a
    ``BrokenPipeError`` traceback."""
    try:
        try:
            status = command()
        except SystemExit as stop:  # --help, or a command ending early: its output is flushed below too
            status = stop.code
        sys.stdout.flush()  # output still buffered meets the closed pipe here, inside the try
    except BrokenPipeError:
        # Python flushes stdout once more at exit: point it at /dev/null so that flush is silent too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(CLOSED_PIPE_STATUS) from None
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> None:
    exit_with(lambda: (args := build_parser().parse_args(argv)).handler(args))
