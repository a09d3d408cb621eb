"""``ppt data synth-rooms`` and ``ppt data data-efficient``: the scene pipeline's command
declarations (registered by :mod:`ppt.data.cli`)."""

from __future__ import annotations

import argparse
import sys

from ppt.data.scenes.rooms.flavors import FLAVORS
from ppt.data.scenes.rooms.variants import COLOR_MODES
from ppt.data.synth_cli import SynthCommand, positive_float, positive_int

__all__ = ["SYNTH_ROOMS", "DATA_EFFICIENT"]


def _synth_rooms(args: argparse.Namespace) -> int:
    from ppt.data.scenes.rooms import write_synthetic_rooms
    from ppt.data.scenes.rooms.variants import RoomVariant, parse_relabel

    try:
        variant = RoomVariant(capture=args.capture, relabel=parse_relabel(args.relabel), colors=args.colors)
        folders = write_synthetic_rooms(args.out, args.flavor, args.scenes, seed=args.seed, density=args.density,
                                        variant=variant)
    except ValueError as error:
        print(f"ppt data synth-rooms: {error}", file=sys.stderr)
        return 2
    splits: dict[str, int] = {}
    for folder in folders:
        split = folder.relative_to(args.out).parts[0]
        splits[split] = splits.get(split, 0) + 1
    flavor = FLAVORS[args.flavor]
    print(f"wrote {len(folders)} {args.flavor} rooms ({len(flavor.class_names)} classes) to {args.out}: "
          + ", ".join(f"{split} {count}" for split, count in sorted(splits.items()))
          + (f"; variant: {variant.describe()}" if variant.describe() else ""))
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
                               help="multiplier of the flavor's points per square metre (default 1.0)"),
             "--capture": dict(choices=sorted(FLAVORS), default=None,
                               help="generate the rooms and capture of this flavor instead, written in --flavor's "
                                    "layout and label set (default: --flavor's own)"),
             "--relabel": dict(action="append", default=[], metavar="KIND=CLASS",
                               help="label an object kind as another class of the label set, a labelling "
                                    "convention (e.g. cabinet=otherfurniture); repeatable"),
             "--colors": dict(choices=COLOR_MODES, default="keep",
                              help="keep the colours, permute their channels (RGB -> GBR) or write none (zeros)")})


def _data_efficient(args: argparse.Namespace) -> int:
    from ppt.data.scenes import S3DIS, ScanNet, ScanNet200, Structured3D
    from ppt.data.scenes.data_efficient import write_data_efficient_lists

    datasets = {"scannet": ScanNet, "scannet200": ScanNet200, "s3dis": S3DIS, "structured3d": Structured3D}
    try:
        if args.dataset not in datasets:
            raise ValueError(f"--dataset must be one of {sorted(datasets)}, got {args.dataset!r}")
        dataset = datasets[args.dataset](args.root, args.split, require_labels=bool(args.points))
        files = write_data_efficient_lists(dataset, args.out, seed=args.seed, percentages=args.percentages,
                                           counts=args.points, min_scenes=args.min_scenes)
    except (FileNotFoundError, ValueError) as error:
        print(f"ppt data data-efficient: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} data-efficient lists over the {len(dataset)} {args.split} scenes of {args.root} to "
          f"{args.out}: " + ", ".join(str(path.relative_to(args.out)) for path in files))
    return 0


DATA_EFFICIENT = SynthCommand(
    "data-efficient", _data_efficient,
    help="write the ScanNet data-efficient benchmark's scene and point lists over a scene dataset",
    description="Draw the data-efficient benchmark's inputs over the scenes of a dataset split, seeded, in the "
                "official formats: limited reconstructions OUT/scenes/<P>.txt (P percent of the scenes, one name per "
                "line) and limited annotations OUT/points/points<K> (torch.save'd dict of scene name -> K labelled "
                "point indices). Smaller lists of one seed are subsets of larger ones. Recipes read them from "
                "ROOT/tasks (data.sources.<name>.limited=lr<P> or la<K>).",
    options={"--root": dict(required=True, help="the dataset root (Pointcept layout)"),
             "--dataset": dict(default="scannet", help="scannet (default), scannet200, s3dis or structured3d"),
             "--split": dict(default="train", help="the split whose scenes are listed (default train)"),
             "--percentages": dict(type=positive_int, nargs="*", default=[1, 5, 10, 20], metavar="P",
                                   help="scene lists: percentages of the scenes (default 1 5 10 20; none: no lists)"),
             "--points": dict(type=positive_int, nargs="*", default=[20, 50, 100, 200], metavar="K",
                              help="point lists: labelled points per scene (default 20 50 100 200; none: no lists)"),
             "--min-scenes": dict(type=positive_int, default=1, metavar="N",
                                  help="scenes per scene list at least (default 1; e.g. the training batch size)")},
    out_help="the folder to write scenes/ and points/ into (ROOT/tasks is where recipes look)")
