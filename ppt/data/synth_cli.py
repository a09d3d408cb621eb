"""What every ``ppt data synth-*`` generator shares: ``--out``, ``--seed`` and its handler
(:class:`SynthCommand`), and validated count and size option types."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SynthCommand", "positive_int", "positive_float", "image_size"]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def image_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> ``(width, height)``, both >= 1."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if min(width, height) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return width, height


@dataclass(frozen=True)
class SynthCommand:
    """One ``ppt data synth-*`` generator: its ``name``, the ``handler`` of its parsed arguments,
    its ``help`` and ``description``, and its own ``options`` (``{flag: add_argument keywords}``);
    :meth:`register` adds the shared ``--out`` and ``--seed``."""

    name: str
    handler: Callable[[argparse.Namespace], int]
    help: str
    description: str
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    out_help: str = "output folder (the dataset root)"

    def register(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
        """Add the command to the ``ppt data`` sub-commands: ``--out`` (required), the options,
        ``--seed`` (default 0)."""
        parser = subparsers.add_parser(self.name, help=self.help, description=self.description)
        parser.add_argument("--out", required=True, help=self.out_help)
        for flag, keywords in self.options.items():
            parser.add_argument(flag, **keywords)
        parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same data (default 0)")
        parser.set_defaults(handler=self.handler)
        return parser
