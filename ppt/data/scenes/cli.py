"""``ppt data synth-rooms``: the scene pipeline's command declaration (registered by
:mod:`ppt.data.cli`)."""

from __future__ import annotations

import argparse

from ppt.data.scenes.rooms.flavors import FLAVORS
from ppt.data.synth_cli import SynthCommand, positive_float, positive_int

__all__ = ["SYNTH_ROOMS"]


def _synth_rooms(args: argparse.Namespace) -> int:
    from ppt.data.scenes.rooms import write_synthetic_rooms

    folders = write_synthetic_rooms(args.out, args.flavor, args.scenes, seed=args.seed, density=args.density)
    splits: dict[str, int] = {}
    for folder in folders:
        split = folder.relative_to(args.out).parts[0]
        splits[split] = splits.get(split, 0) + 1
    flavor = FLAVORS[args.flavor]
    print(f"wrote {len(folders)} {args.flavor} rooms ({len(flavor.class_names)} classes) to {args.out}: "
          + ", ".join(f"{split} {count}" for split, count in sorted(splits.items())))
    return 0


SYNTH_ROOMS = SynthCommand(
    "synth-rooms", _synth_rooms,
    help="write synthetic furnished rooms in the layout of ScanNet, S3DIS or Structured3D",
    description="Generate furnished rooms sampled as coloured points with normals and labels, written in "
                "Pointcept's preprocessed layout of the chosen dataset (its split folders, file names, "
                "label set and the look of its capture).",
    options={"--flavor": dict(required=True, choices=sorted(FLAVORS), help="which dataset to imitate"),
             "--scenes": dict(required=True, type=positive_int, help="number of rooms to write"),
             "--density": dict(type=positive_float, default=1.0,
                               help="multiplier of the flavor's points per square metre (default 1.0)")})
