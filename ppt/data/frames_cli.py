"""``ppt data synth-frames``: write the synthetic RGB-D frames of :mod:`ppt.data.synthetic_frames`."""

from __future__ import annotations

import argparse

__all__ = ["add_synth_frames_parser"]


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if min(width, height) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return width, height


def _synth_frames(args: argparse.Namespace) -> int:
    from ppt.data.synthetic_frames import write_synthetic_frames

    folders = write_synthetic_frames(args.out, args.scenes, frames=args.frames, size=args.size,
                                     depth_size=args.depth_size, seed=args.seed, density=args.density)
    print(f"wrote {len(folders)} rooms x {args.frames} RGB-D frames to {args.out} (frames in {args.out}/2D)")
    return 0


def add_synth_frames_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth-frames`` on the ``ppt data`` subcommands."""
    parser = subparsers.add_parser(
        "synth-frames", help="write synthetic ScanNet rooms with RGB-D frames rendered along a camera path",
        description="Synthetic ScanNet-flavour rooms in Pointcept's layout (as synth-rooms) plus RGB-D frames "
                    "rendered with ppt's rasterizer from a camera walking inside each room, in the layout "
                    "ppt.data.ScanNetFrames reads: 2D/color/<scene>/<n>.jpg, 2D/depth/<scene>/<n>.png (uint16 mm), "
                    "2D/pose/<scene>/<n>.txt (camera-to-world) and 2D/intrinsic/<scene>/intrinsic_{color,depth}.txt.")
    parser.add_argument("--out", required=True, help="output folder (the dataset root)")
    parser.add_argument("--scenes", type=int, default=4, help="number of rooms (default 4)")
    parser.add_argument("--frames", type=int, default=60, help="frames per room (default 60)")
    parser.add_argument("--size", type=_size, default=(320, 240), help="colour frame size WxH (default 320x240)")
    parser.add_argument("--depth-size", type=_size, default=(160, 120), help="depth frame size WxH (default 160x120)")
    parser.add_argument("--density", type=float, default=1.0, help="multiplier of the rooms' points per m^2")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_synth_frames)
    return parser
