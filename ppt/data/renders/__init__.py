"""Render pipeline (UniPre3D, object level): clouds with posed views.

:class:`ShapeNetRenders` (:mod:`.shapenet_renders`) yields :class:`RenderSample` items (a cloud and
its views with cameras), :class:`RotateWithCameras` turns a cloud with its cameras, :class:`NormalizeWithCameras` puts
it in the object datasets' frame (unit sphere, ``y`` up) with its cameras, and
:func:`collate_renders` stacks samples into a :class:`RenderBatch`. :mod:`.synthetic` renders
synthetic objects with the Gaussian rasterizer in the same layout (``ppt data synth-renders``,
:mod:`.cli`).
"""

from ppt.data.renders.shapenet_renders import (NormalizeWithCameras, RenderBatch, RenderSample, RotateWithCameras,
                                              ShapeNetRenders, collate_renders)
from ppt.data.renders.synthetic import write_synthetic_renders

__all__ = ["ShapeNetRenders", "RenderSample", "RenderBatch", "RotateWithCameras", "NormalizeWithCameras", "collate_renders",
           "write_synthetic_renders"]
