"""``ppt data synth-renders``: write the synthetic multi-view renders of :mod:`ppt.data.synthetic_renders`."""

from __future__ import annotations

import argparse

__all__ = ["add_synth_renders_parser"]


def _synth_renders(args: argparse.Namespace) -> int:
    from ppt.data.synthetic_renders import write_synthetic_renders

    folders = write_synthetic_renders(args.out, per_class=args.per_class, views=args.views, num_points=args.points,
                                      gaussians=args.gaussians, image_size=args.image_size, seed=args.seed)
    print(f"wrote {len(folders)} objects x {args.views} views to {args.out}")
    return 0


def add_synth_renders_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth-renders`` on the ``ppt data`` subcommands."""
    parser = subparsers.add_parser(
        "synth-renders", help="write procedural objects rendered from 24 views in UniPre3D's ShapeNet layout",
        description="Coloured procedural objects of ScanObjectNN's 15 classes, turned into dense Gaussians and "
                    "rendered with ppt's rasterizer (128x128, black background, 49.134 degree field of view) in "
                    "the layout ppt.data.ShapeNetRenders reads: <class>/<id>/easy/NN.png + NN.txt "
                    "(camera-to-world) and <class>/<id>/pts/<class>-<id>.npy (the sparse input cloud).")
    parser.add_argument("--out", required=True, help="output folder (it becomes the dataset root)")
    parser.add_argument("--per-class", type=int, default=4, help="objects per class (default 4: 60 objects)")
    parser.add_argument("--views", type=int, default=24, help="views per object (default 24)")
    parser.add_argument("--points", type=int, default=2048, help="points of the stored input cloud (default 2048)")
    parser.add_argument("--gaussians", type=int, default=16384, help="ground-truth Gaussians per object (default 16384)")
    parser.add_argument("--image-size", type=int, default=128, help="side of the square renders (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_synth_renders)
    return parser
