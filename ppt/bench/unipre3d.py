"""UniPre3D training steps (issue 13), cases of the ``models`` suite.

- Object level: one training step of :class:`ppt.models.UniPre3D` (Point-MAE backbone, conv 2D
  branch and fusion, Gaussian head, renders, weighted L2 loss, backward) on 32 objects x 4 views at
  128 x 128 with 1024 points per object.
- Scene level: one training step of :class:`ppt.models.UniPre3DScene` (SpUNet-S, conv 2D branch and
  depth point fusion, Gaussian head, renders, L2 loss, backward) at the ``unipre3d-scene`` recipe's
  sizes: 2 synthetic ScanNet-flavour rooms (``ppt data synth-frames``, density 1, 2 cm grid) x 8
  target frames at 160 x 120, each with its reference frame.

Each renders every item x view in one rasterizer call; the baseline is the same step rendering one
image per Python call of ppt's op, the structure of the official code (which loops over the Inria
rasterizer). Both run the same model on the same inputs; the check compares their renders, losses
and a head gradient. The steps stop before the optimizer (whose update would make the two sides
run different weights); its share of a step is small.

Run: ``ppt bench models [--quick] [--device cpu|cuda]``.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ppt.bench.harness import Baseline, Case
from ppt.bench.raster import look_at
from ppt.data.scannet_frames import FrameBatch, ScanNetFrames, collate_frames
from ppt.data.shapenet_renders import SHAPENET_RENDER_FOV, intrinsics
from ppt.data.synthetic import object_clouds
from ppt.data.synthetic_frames import write_synthetic_frames
from ppt.models.unipre3d import UniPre3D, weighted_l2_loss
from ppt.models.unipre3d_scene import UniPre3DScene, pad_scenes
from ppt.ops import rasterize_gaussians

__all__ = ["unipre3d_cases"]


@dataclass(frozen=True)
class Workload:
    objects: int
    views: int
    size: int
    points: int
    groups: int
    depth: int


FULL = Workload(objects=32, views=4, size=128, points=1024, groups=128, depth=12)
QUICK = Workload(objects=4, views=2, size=64, points=256, groups=32, depth=2)
TARGET = 5.0  # the target: the batched step >= 5x the per-image loop


def make_inputs(w: Workload, device: torch.device, seed: int = 0) -> dict:
    """Object clouds (radius about 0.5, like the renders' objects), random views on a 1.75 orbit."""
    g = torch.Generator().manual_seed(seed)
    points = object_clouds(w.objects, w.points, seed=seed) * 0.5
    azimuth = torch.rand(w.objects, w.views, generator=g) * 2 * math.pi
    elevation = (torch.rand(w.objects, w.views, generator=g) - 0.2) * math.pi / 4
    eyes = 1.75 * torch.stack([torch.cos(elevation) * torch.cos(azimuth), torch.cos(elevation) * torch.sin(azimuth),
                               torch.sin(elevation)], dim=-1)
    inputs = dict(points=points, images=torch.rand(w.objects, w.views, w.size, w.size, 3, generator=g),
                  viewmats=look_at(eyes, torch.zeros_like(eyes)),
                  Ks=intrinsics(w.size, w.size, SHAPENET_RENDER_FOV).expand(w.objects, w.views, 3, 3).contiguous())
    return {k: v.float().to(device) for k, v in inputs.items()}


def make_model(w: Workload, device: torch.device) -> UniPre3D:
    # No stochastic depth, so the batched and looped steps compute the same function.
    model = UniPre3D(num_groups=w.groups, depth=w.depth, drop_path=0.0, image_size=w.size).to(device)
    return model.train()


def render_per_image(model: UniPre3D, gaussians, viewmats: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    """The official structure: one rasterizer call per (object, view)."""
    renderer = model.renderer
    rows = []
    for b in range(viewmats.shape[0]):
        views = []
        for v in range(viewmats.shape[1]):
            image, _, _ = rasterize_gaussians(
                *(field[b] for field in gaussians), viewmats[b, v:v + 1], Ks[b, v:v + 1], renderer.width,
                renderer.height, sh_degree=renderer.sh_degree, near_plane=renderer.near_plane,
                backgrounds=renderer.background.to(viewmats.dtype)[None])
            views.append(image[0])
        rows.append(torch.stack(views))
    return torch.stack(rows)


def train_step(model: UniPre3D, inputs: dict, batched: bool):
    """Forward, loss and backward; returns the renders, the loss and the last head layer's gradient."""
    model.zero_grad(set_to_none=True)
    points, images, viewmats, Ks = (inputs[k] for k in ("points", "images", "viewmats", "Ks"))
    if batched:
        renders = model(points, images, viewmats, Ks)
    else:
        gaussians = model.predict(points, images[:, 0], viewmats[:, 0], Ks[:, 0])
        renders = render_per_image(model, gaussians, viewmats, Ks)
    loss = weighted_l2_loss(renders, images)
    loss.backward()
    return renders.detach(), loss.detach(), model.head.mlp[-1].weight.grad.clone()


@dataclass(frozen=True)
class SceneWorkload:
    scenes: int
    views: int
    size: tuple[int, int]
    frames: int
    density: float
    channels: tuple[int, ...]


SCENE_FULL = SceneWorkload(scenes=2, views=8, size=(160, 120), frames=24, density=1.0,
                           channels=(32, 64, 128, 256, 256, 128, 96, 96))
SCENE_QUICK = SceneWorkload(scenes=2, views=2, size=(40, 30), frames=8, density=0.1, channels=(8,) * 8)


def scene_batch(w: SceneWorkload, device: torch.device) -> FrameBatch:
    """The training items of the first ``w.scenes`` synthetic rooms with frames (written to a
    temporary folder: ``scenes + 1`` rooms give ``scenes`` training rooms), collated."""
    with tempfile.TemporaryDirectory(prefix="ppt-bench-frames-") as folder:
        write_synthetic_frames(folder, w.scenes + 1, frames=w.frames, size=(2 * w.size[0], 2 * w.size[1]),
                               depth_size=w.size, density=w.density)
        data = ScanNetFrames(folder, "train", targets=w.views, size=w.size)
        if len(data) < w.scenes:
            raise RuntimeError(f"scene_batch: {len(data)} training rooms written, {w.scenes} needed")
        return collate_frames([data[i] for i in range(w.scenes)]).to(device)


def scene_train_step(model: UniPre3DScene, batch: FrameBatch, batched: bool):
    """Forward, loss and backward; returns the renders, the loss and the last head layer's gradient."""
    model.zero_grad(set_to_none=True)
    if batched:
        renders = model(batch)
    else:
        gaussians, scene = model.predict(batch)
        renders = render_per_image(model, pad_scenes(gaussians, scene, batch.images.shape[0]), batch.viewmats,
                                   batch.Ks)
    loss = model.loss(renders, batch.images)
    loss.backward()
    return renders.detach(), loss.detach(), model.head.mlp[-1].weight.grad.clone()


def _check_same_step(got, base) -> None:
    torch.testing.assert_close(got[0], base[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[1], base[1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got[2], base[2], rtol=1e-3, atol=1e-6)


def unipre3d_cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    if dtype != torch.float32:  # the rasterizer takes float32/float64 only
        return
    w = QUICK if quick else FULL
    model, inputs = make_model(w, device), make_inputs(w, device)
    yield Case(
        name=f"unipre3d object step {w.objects}x{w.views} images",
        run=lambda: train_step(model, inputs, batched=True),
        baselines=[Baseline("per-image loop", lambda: train_step(model, inputs, batched=False),
                            check=_check_same_step, target=TARGET)],
        params=dict(objects=w.objects, views=w.views, size=w.size, points=w.points, groups=w.groups, depth=w.depth),
        items=(w.objects * w.views, "images"), warmup=1, repeats=3 if quick else 5)

    s = SCENE_QUICK if quick else SCENE_FULL
    batch = scene_batch(s, device)
    scene_model = UniPre3DScene(channels=s.channels, image_size=s.size).to(device).train()
    yield Case(
        name=f"unipre3d scene step {s.scenes}x{s.views} images",
        run=lambda: scene_train_step(scene_model, batch, batched=True),
        baselines=[Baseline("per-image loop", lambda: scene_train_step(scene_model, batch, batched=False),
                            check=_check_same_step)],
        params=dict(scenes=s.scenes, views=s.views, width=s.size[0], height=s.size[1], density=s.density,
                    points=int(batch.points.coord.shape[0]), channels=list(s.channels)),
        items=(s.scenes * s.views, "images"), warmup=1, repeats=3)  # a full step takes minutes on a CPU
