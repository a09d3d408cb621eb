"""``ppt data synth-objects``: write the synthetic ScanObjectNN of :mod:`ppt.data.objects.synthetic`."""

from __future__ import annotations

import argparse
import sys

from ppt.data.synth_cli import SynthCommand, positive_int

__all__ = ["SYNTH_OBJECTS"]


def _synth_objects(args: argparse.Namespace) -> int:
    from ppt.data.objects.synthetic_layouts import write_synthetic_modelnet40, write_synthetic_shapenet55
    from ppt.data.objects.synthetic import write_synthetic_objects

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


SYNTH_OBJECTS = SynthCommand(
    "synth-objects", _synth_objects,
    help="write procedural objects of ScanObjectNN's 15 classes as ScanObjectNN h5 files",
    description="Procedural objects of ScanObjectNN's 15 classes with varying parts, sampled as surface "
                "points. 'clean' writes the objects alone (main_split_nobg/, OBJ_ONLY); 'background' writes "
                "them cropped from a cluttered scene (main_split/: OBJ_BG, and PB_T50_RS with a perturbed "
                "crop box). --layout writes the clean objects in ModelNet40's or ShapeNet-55's layout instead.",
    out_help="output folder (it becomes the dataset root)",
    options={"--layout": dict(choices=("scanobjectnn", "modelnet40", "shapenet55"), default="scanobjectnn",
                              help="scanobjectnn: h5 files (default); modelnet40: modelnet40_normal_resampled "
                                   "with the cached .dat pickles (15 classes); shapenet55: ShapeNet55-34 .npy "
                                   "clouds for pre-training"),
             "--variant": dict(choices=("clean", "background"), default="clean"),
             "--train-per-class": dict(type=positive_int, default=64, help="training objects per class (default 64)"),
             "--test-per-class": dict(type=positive_int, default=16, help="test objects per class (default 16)"),
             "--points": dict(type=positive_int, default=2048, help="points per object (default 2048)")})
