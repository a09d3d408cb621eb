"""Frame pipeline (UniPre3D, scene level): scene clouds with RGB-D frames.

:class:`ScanNetFrames` (:mod:`.scannet_frames`) yields :class:`FrameSample` items (a grid-sampled
scene with target and reference RGB-D frames); :func:`collate_frames` makes a :class:`FrameBatch`.
:mod:`.synthetic` writes synthetic rooms with frames rendered along a camera path (``ppt data
synth-frames``, :mod:`.cli`).
"""

from ppt.data.frames.scannet_frames import FrameBatch, FrameSample, ScanNetFrames, collate_frames
from ppt.data.frames.synthetic import write_synthetic_frames

__all__ = ["ScanNetFrames", "FrameSample", "FrameBatch", "collate_frames", "write_synthetic_frames"]
