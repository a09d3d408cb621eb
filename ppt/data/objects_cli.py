"""``ppt data synth-objects``: write the synthetic ScanObjectNN of :mod:`ppt.data.synthetic_objects`."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_synth_objects_parser"]


def _synth_objects(args: argparse.Namespace) -> int:
    from ppt.data.synthetic_layouts import write_synthetic_modelnet40, write_synthetic_shapenet55
    from ppt.data.synthetic_objects import write_synthetic_objects

    sizes = dict(seed=args.seed, train_per_class=args.train_per_class, test_per_class=args.test_per_class,
                 num_points=args.points)
    if args.layout == "scanobjectnn":
        paths = write_synthetic_objects(args.out, args.variant, **sizes)
    elif args.variant != "clean":
        print(f"ppt data synth-objects: --variant {args.variant} applies to --layout scanobjectnn only", file=sys.stderr)
        return 2
    elif args.layout == "modelnet40":
        paths = write_synthetic_modelnet40(args.out, **sizes)
    else:
        paths = write_synthetic_shapenet55(args.out, **sizes)
    for path in paths:
        print(path)
    return 0


def add_synth_objects_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth-objects`` on the ``ppt data`` subcommands."""
    parser = subparsers.add_parser(
        "synth-objects", help="write procedural objects of ScanObjectNN's 15 classes as ScanObjectNN h5 files",
        description="Procedural objects of ScanObjectNN's 15 classes with varying parts, sampled as surface "
                    "points. 'clean' writes the objects alone (main_split_nobg/, OBJ_ONLY); 'background' writes "
                    "them cropped from a cluttered scene (main_split/: OBJ_BG, and PB_T50_RS with a perturbed "
                    "crop box). --layout writes the clean objects in ModelNet40's or ShapeNet-55's layout instead.")
    parser.add_argument("--out", required=True, help="output folder (it becomes the dataset root)")
    parser.add_argument("--layout", choices=("scanobjectnn", "modelnet40", "shapenet55"), default="scanobjectnn",
                        help="scanobjectnn: h5 files (default); modelnet40: modelnet40_normal_resampled with the "
                             "cached .dat pickles (15 classes); shapenet55: ShapeNet55-34 .npy clouds for pre-training")
    parser.add_argument("--variant", choices=("clean", "background"), default="clean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-per-class", type=int, default=64, help="training objects per class (default 64)")
    parser.add_argument("--test-per-class", type=int, default=16, help="test objects per class (default 16)")
    parser.add_argument("--points", type=int, default=2048, help="points per object (default 2048)")
    parser.set_defaults(handler=_synth_objects)
    return parser
