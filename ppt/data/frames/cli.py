"""``ppt data synth-frames``: write the synthetic RGB-D frames of :mod:`ppt.data.frames.synthetic`."""

from __future__ import annotations

import argparse

from ppt.data.synth_cli import SynthCommand, image_size, positive_float, positive_int

__all__ = ["SYNTH_FRAMES"]


def _synth_frames(args: argparse.Namespace) -> int:
    from ppt.data.frames.synthetic import write_synthetic_frames

    folders = write_synthetic_frames(args.out, args.scenes, frames=args.frames, size=args.size,
                                     depth_size=args.depth_size, seed=args.seed, density=args.density)
    print(f"wrote {len(folders)} rooms x {args.frames} RGB-D frames to {args.out} (frames in {args.out}/2D)")
    return 0


SYNTH_FRAMES = SynthCommand(
    "synth-frames", _synth_frames,
    help="write synthetic ScanNet rooms with RGB-D frames rendered along a camera path",
    description="Synthetic ScanNet-flavour rooms in Pointcept's layout (as synth-rooms) plus RGB-D frames "
                "rendered with ppt's rasterizer from a camera walking inside each room, in the layout "
                "ppt.data.ScanNetFrames reads: 2D/color/<scene>/<n>.jpg, 2D/depth/<scene>/<n>.png (uint16 mm), "
                "2D/pose/<scene>/<n>.txt (camera-to-world) and 2D/intrinsic/<scene>/intrinsic_{color,depth}.txt.",
    options={"--scenes": dict(type=positive_int, default=4, help="number of rooms (default 4)"),
             "--frames": dict(type=positive_int, default=60, help="frames per room (default 60)"),
             "--size": dict(type=image_size, default=(320, 240), help="colour frame size WxH (default 320x240)"),
             "--depth-size": dict(type=image_size, default=(160, 120), help="depth frame size WxH (default 160x120)"),
             "--density": dict(type=positive_float, default=1.0, help="multiplier of the rooms' points per m^2 (default 1.0)")})
