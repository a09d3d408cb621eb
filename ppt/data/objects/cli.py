"""``ppt data synth-objects``: write the synthetic ScanObjectNN of :mod:`ppt.data.objects.synthetic`;
``ppt data synth-parts``: the synthetic ShapeNetPart of :mod:`ppt.data.objects.synthetic_parts`."""

from __future__ import annotations

import argparse
import sys

from ppt.data.synth_cli import SynthCommand, positive_int

__all__ = ["SYNTH_OBJECTS", "SYNTH_PARTS"]


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


def _synth_parts(args: argparse.Namespace) -> int:
    from ppt.data.objects.synthetic_parts import write_synthetic_shapenet_part

    for path in write_synthetic_shapenet_part(args.out, seed=args.seed, train_per_class=args.train_per_class,
                                              val_per_class=args.val_per_class, test_per_class=args.test_per_class,
                                              num_points=args.points):
        print(path)
    return 0


SYNTH_PARTS = SynthCommand(
    "synth-parts", _synth_parts,
    help="write procedural objects of ShapeNetPart's 16 categories with part labels, in its layout",
    description="Procedural objects of ShapeNetPart's 16 categories whose parts are geometric components (legs, "
                "seat, back, wings, wheels, ...), with exact normals, written in the layout of "
                "shapenetcore_partanno_segmentation_benchmark_v0_normal: <synset>/<id>.txt rows 'x y z nx ny nz "
                "part', synsetoffset2category.txt and train_test_split/shuffled_{train,val,test}_file_list.json.",
    out_help="output folder (it becomes the dataset root)",
    options={"--train-per-class": dict(type=positive_int, default=32, help="training objects per category (default 32)"),
             "--val-per-class": dict(type=positive_int, default=8, help="validation objects per category (default 8)"),
             "--test-per-class": dict(type=positive_int, default=8, help="test objects per category (default 8)"),
             "--points": dict(type=positive_int, default=2048,
                              help="fewest points per object; each has up to 25%% more (default 2048)")})
