"""``ppt data``: dataset tools. ``add_data_command`` registers the group on the ``ppt`` parser;
each tool is one sub-command declared as a :class:`~ppt.data.synth_cli.SynthCommand` by its
pipeline: ``synth-rooms`` in :mod:`ppt.data.scenes.cli`, ``synth-objects`` and ``synth-parts`` in
:mod:`ppt.data.objects.cli`, ``synth-renders`` in :mod:`ppt.data.renders.cli`, ``synth-frames`` in
:mod:`ppt.data.frames.cli`, ``synth-sweeps`` in :mod:`ppt.data.sweeps.cli`; ``data-efficient`` (the ScanNet data-efficient
benchmark's lists) in :mod:`ppt.data.scenes.cli`."""

from __future__ import annotations

import argparse

from ppt.data.frames.cli import SYNTH_FRAMES
from ppt.data.objects.cli import SYNTH_OBJECTS, SYNTH_PARTS
from ppt.data.renders.cli import SYNTH_RENDERS
from ppt.data.scenes.cli import DATA_EFFICIENT, SYNTH_ROOMS
from ppt.data.sweeps.cli import SYNTH_SWEEPS

__all__ = ["add_data_command"]


def add_data_command(commands: argparse._SubParsersAction) -> None:
    """Register ``ppt data`` and its sub-commands on the ``ppt`` sub-parsers ``commands``."""
    data = commands.add_parser("data", help="generate and inspect datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="tool")
    for command in (SYNTH_ROOMS, SYNTH_OBJECTS, SYNTH_PARTS, SYNTH_RENDERS, SYNTH_FRAMES, SYNTH_SWEEPS, DATA_EFFICIENT):
        command.register(data_commands)
