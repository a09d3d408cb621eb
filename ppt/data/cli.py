"""``ppt data``: dataset tools. ``add_data_command`` registers the group on the ``ppt`` parser;
each tool is one sub-command (``synth-rooms`` here, ``synth-objects`` in :mod:`ppt.data.objects_cli`,
``synth-renders`` in :mod:`ppt.data.renders_cli`, ``synth-frames`` in :mod:`ppt.data.frames_cli`)."""

from __future__ import annotations

import argparse

from ppt.data.frames_cli import add_synth_frames_parser
from ppt.data.objects_cli import add_synth_objects_parser
from ppt.data.renders_cli import add_synth_renders_parser


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _synth_rooms(args: argparse.Namespace) -> int:
    from ppt.data.rooms import FLAVORS, write_synthetic_rooms

    folders = write_synthetic_rooms(args.out, args.flavor, args.scenes, seed=args.seed, density=args.density)
    splits: dict[str, int] = {}
    for folder in folders:
        split = folder.relative_to(args.out).parts[0]
        splits[split] = splits.get(split, 0) + 1
    flavor = FLAVORS[args.flavor]
    print(f"wrote {len(folders)} {args.flavor} rooms ({len(flavor.class_names)} classes) to {args.out}: "
          + ", ".join(f"{split} {count}" for split, count in sorted(splits.items())))
    return 0


def add_synth_rooms_command(data_commands: argparse._SubParsersAction) -> None:
    from ppt.data.rooms import FLAVORS

    parser = data_commands.add_parser(
        "synth-rooms", help="write synthetic furnished rooms in the layout of ScanNet, S3DIS or Structured3D",
        description="Generate furnished rooms sampled as coloured points with normals and labels, written in "
                    "Pointcept's preprocessed layout of the chosen dataset (its split folders, file names, "
                    "label set and the look of its capture).")
    parser.add_argument("--flavor", required=True, choices=sorted(FLAVORS), help="which dataset to imitate")
    parser.add_argument("--out", required=True, help="output folder (the dataset root)")
    parser.add_argument("--scenes", required=True, type=_positive_int, help="number of rooms to write")
    parser.add_argument("--seed", type=int, default=0, help="seed; the same seed writes the same rooms (default 0)")
    parser.add_argument("--density", type=_positive_float, default=1.0,
                        help="multiplier of the flavor's points per square metre (default 1.0)")
    parser.set_defaults(handler=_synth_rooms)


def add_data_command(commands: argparse._SubParsersAction) -> None:
    """Register ``ppt data`` and its sub-commands on the ``ppt`` sub-parsers ``commands``."""
    data = commands.add_parser("data", help="generate and inspect datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="tool")
    add_synth_rooms_command(data_commands)
    add_synth_objects_parser(data_commands)
    add_synth_renders_parser(data_commands)
    add_synth_frames_parser(data_commands)
