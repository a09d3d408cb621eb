"""``ppt data synth-sweeps``: the sweep pipeline's command declaration (registered by
:mod:`ppt.data.cli`)."""

from __future__ import annotations

import argparse

from ppt.data.sweeps.writers import SWEEP_FLAVORS, split_counts
from ppt.data.synth_cli import SynthCommand, positive_int

__all__ = ["SYNTH_SWEEPS"]


def _sweep_count(text: str) -> int:
    value = positive_int(text)
    try:
        split_counts(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be >= 2 (one train and one val sweep), got {text}") from None
    return value


def _synth_sweeps(args: argparse.Namespace) -> int:
    from ppt.data.sweeps.writers import write_synthetic_sweeps

    written = write_synthetic_sweeps(args.out, args.flavor, args.sweeps, seed=args.seed,
                                     azimuth_steps=args.azimuth_steps)
    counts = split_counts(args.sweeps)
    print(f"wrote {len(written)} {args.flavor} sweeps to {args.out}: "
          + ", ".join(f"{split} {count}" for split, count in counts.items()))
    return 0


SYNTH_SWEEPS = SynthCommand(
    "synth-sweeps", _synth_sweeps,
    help="write synthetic LiDAR sweeps in the layout of SemanticKITTI, nuScenes or Waymo",
    description="Ray-cast procedural street scenes (road, sidewalks, buildings, vegetation, cars, poles, people) "
                "with a spinning LiDAR of the chosen dataset's beam count and vertical field of view, and write "
                "the sweeps in that dataset's on-disk layout with its raw label ids.",
    options={"--flavor": dict(required=True, choices=SWEEP_FLAVORS, help="which dataset to imitate"),
             "--sweeps": dict(type=_sweep_count, default=4,
                              help="number of sweeps (a quarter validates; >= 2, default 4)"),
             "--azimuth-steps": dict(type=positive_int, default=None,
                                     help="firings per turn (default: the sensor's, ~120k points a "
                                          "SemanticKITTI sweep; small values make tiny sweeps)")})
