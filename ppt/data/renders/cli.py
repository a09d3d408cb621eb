"""``ppt data synth-renders``: write the synthetic multi-view renders of :mod:`ppt.data.renders.synthetic`."""

from __future__ import annotations

import argparse

from ppt.data.synth_cli import SynthCommand, positive_int

__all__ = ["SYNTH_RENDERS"]


def _synth_renders(args: argparse.Namespace) -> int:
    from ppt.data.renders.synthetic import write_synthetic_renders

    folders = write_synthetic_renders(args.out, per_class=args.per_class, views=args.views, num_points=args.points,
                                      gaussians=args.gaussians, image_size=args.image_size, seed=args.seed)
    print(f"wrote {len(folders)} objects x {args.views} views to {args.out}")
    return 0


SYNTH_RENDERS = SynthCommand(
    "synth-renders", _synth_renders,
    help="write procedural objects rendered from 24 views in UniPre3D's ShapeNet layout",
    description="Coloured procedural objects of ScanObjectNN's 15 classes, turned into dense Gaussians and "
                "rendered with ppt's rasterizer (128x128, black background, 49.134 degree field of view) in "
                "the layout ppt.data.ShapeNetRenders reads: <class>/<id>/easy/NN.png + NN.txt "
                "(camera-to-world) and <class>/<id>/pts/<class>-<id>.npy (the sparse input cloud).",
    out_help="output folder (it becomes the dataset root)",
    options={"--per-class": dict(type=positive_int, default=4, help="objects per class (default 4: 60 objects)"),
             "--views": dict(type=positive_int, default=24, help="views per object (default 24)"),
             "--points": dict(type=positive_int, default=2048, help="points of the stored input cloud (default 2048)"),
             "--gaussians": dict(type=positive_int, default=16384, help="ground-truth Gaussians per object (default 16384)"),
             "--image-size": dict(type=positive_int, default=128, help="side of the square renders (default 128)")})
