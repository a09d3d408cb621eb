"""Synthetic multi-view renders in UniPre3D's ShapeNet layout (:class:`ppt.data.ShapeNetRenders`):
the embedded data of the object-level pre-training, which runs without downloads.

Each object is one of the procedural objects of :mod:`ppt.data.objects.synthetic` (ScanObjectNN's
15 classes), coloured part by part, scaled to a radius of 0.5 and turned into dense ground-truth
Gaussians (one small isotropic Gaussian per surface sample), rendered by ppt's rasterizer into 24
views of 128 x 128 pixels (black background) from cameras on a sphere of radius 1.75 around it,
looking at its centre, with the renders' 49.134 degree field of view. A sparse sample of the same
surface is written as the input cloud. Objects are stored under ``<class>/<NNNN>/`` with the class
name as the synset.

Frames follow the real data: clouds are stored ``y``-up (ShapeNet's frame) and the cameras live in
the frame the loader turns the centred cloud into (``(x, y, z) -> (-z, x, -y)``), so the loader's
points project onto the objects in the images.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ppt.data.objects.scanobjectnn import SCANOBJECTNN_CLASSES
from ppt.data.objects.synthetic import synthesize_object
from ppt.data.renders.shapenet_renders import RENDER_FOLDER, SHAPENET_RENDER_FOV, intrinsics, to_camera_frame
from ppt.ops import knn, rasterize_gaussians

__all__ = ["write_synthetic_renders", "look_at_camera_to_world", "splat_points", "to_uint8", "CAMERA_DISTANCE"]

CAMERA_DISTANCE = 1.75
"""Distance of the cameras from the object centre (the official test orbit's)."""
OBJECT_RADIUS = 0.5
ELEVATION_DEGREES = (-10.0, 45.0)
"""Range of the camera elevations above the object's horizontal plane."""


def look_at_camera_to_world(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """4 x 4 camera-to-world matrix (OpenCV axes: x right, y down, z forward) of a camera at
    ``position`` looking at ``target`` with ``up`` pointing up in the image."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at_camera_to_world: the view direction is parallel to up")
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, down, forward, position
    return matrix


def _camera_orbit(views: int, rng: np.random.Generator) -> np.ndarray:
    """``(views, 4, 4)`` camera-to-world matrices in the cameras' frame, azimuths spread evenly (with
    jitter), elevations drawn from :data:`ELEVATION_DEGREES`."""
    up_stored = np.array([0.0, 1.0, 0.0])  # the stored clouds are y-up
    up = to_camera_frame(up_stored[None])[0]
    matrices = []
    for view in range(views):
        azimuth = 2 * math.pi * (view + rng.uniform(-0.3, 0.3)) / views
        elevation = math.radians(rng.uniform(*ELEVATION_DEGREES))
        stored = CAMERA_DISTANCE * np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                                             math.cos(elevation) * math.cos(azimuth)])
        matrices.append(look_at_camera_to_world(to_camera_frame(stored[None])[0], np.zeros(3), up))
    return np.stack(matrices)


def _colours(part_of: np.ndarray, heights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-point RGB: one random colour per part, darkened towards the object's bottom."""
    palette = rng.uniform(0.15, 0.95, size=(int(part_of.max()) + 1, 3))
    span = max(float(heights.max() - heights.min()), 1e-6)
    shade = 0.6 + 0.4 * (heights - heights.min()) / span
    return palette[part_of] * shade[:, None]


def splat_points(means: np.ndarray, colours: np.ndarray, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                 rng: np.random.Generator, *, render_mode: str = "RGB", near_plane: float = 0.01) -> Tensor:
    """Render the surface samples ``means`` ``(N, 3)`` with ``colours`` ``(N, 3)`` as dense
    ground-truth Gaussians (isotropic, 1.5x the mean nearest-neighbour spacing, opacity 0.95, black
    background) into the cameras ``viewmats`` ``(V, 4, 4)``, ``Ks`` ``(V, 3, 3)`` -> images
    ``(V, H, W, D)`` and alphas ``(V, H, W, 1)``, float32 (``render_mode`` as
    :func:`ppt.ops.rasterize_gaussians`)."""
    means_t = torch.from_numpy(means.astype(np.float32))
    # Isotropic Gaussians 1.5x the mean nearest-neighbour spacing cover the random samples without holes.
    probe = means_t[torch.from_numpy(rng.choice(len(means), size=min(1024, len(means)), replace=False))]
    dist2, _ = knn(probe[None], means_t[None], 2)
    sigma = 1.5 * float(dist2[0, :, 1].sqrt().mean())
    count = len(means)
    quats = torch.zeros(count, 4)
    quats[:, 0] = 1.0
    images, alphas, _ = rasterize_gaussians(
        means_t, quats, torch.full((count, 3), sigma), torch.full((count,), 0.95),
        torch.from_numpy(colours.astype(np.float32)), viewmats, Ks, width, height,
        backgrounds=None if render_mode in ("D", "ED") else torch.zeros(len(viewmats), 3),
        render_mode=render_mode, near_plane=near_plane)
    return images, alphas


def to_uint8(images: Tensor) -> np.ndarray:
    """Colours in [0, 1] -> uint8 (rounded, clamped)."""
    return (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def _render_object(means: np.ndarray, colours: np.ndarray, camera_to_world: np.ndarray, image_size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``(V, H, W, 3)`` uint8 renders of the dense Gaussians at ``means`` (cameras' frame)."""
    viewmats = torch.from_numpy(np.linalg.inv(camera_to_world).astype(np.float32))
    Ks = intrinsics(image_size, image_size, SHAPENET_RENDER_FOV).expand(len(viewmats), 3, 3)
    return to_uint8(splat_points(means, colours, viewmats, Ks, image_size, image_size, rng)[0])


def write_synthetic_renders(out: str | PathLike, *, per_class: int = 4, views: int = 24, num_points: int = 2048,
                            gaussians: int = 16384, image_size: int = 128, seed: int = 0) -> list[Path]:
    """Write ``per_class`` objects of each of the 15 classes (see the module docstring) and return
    their folders.

    Args:
        per_class: objects per class.
        views: rendered views per object (the real renders have 24).
        num_points: points of the stored input cloud (the loader subsamples them).
        gaussians: dense ground-truth Gaussians per object.
        image_size: side of the square renders.
        seed: the same seed writes the same files.
    """
    from PIL import Image

    for name, value in (("per_class", per_class), ("views", views), ("num_points", num_points),
                        ("gaussians", gaussians), ("image_size", image_size)):
        if value < 1:
            raise ValueError(f"write_synthetic_renders: {name} must be >= 1, got {value}")
    out = Path(out)
    folders = []
    for label, synset in enumerate(SCANOBJECTNN_CLASSES):
        for instance in range(per_class):
            rng = np.random.default_rng([seed, label, instance])
            surface, part_of = synthesize_object(label, rng, num_points + gaussians, noise=0.0)
            surface = surface.astype(np.float64) * OBJECT_RADIUS + rng.uniform(-0.05, 0.05, 3)
            cloud, dense, dense_parts = surface[:num_points], surface[num_points:], part_of[num_points:]
            # The loader centres on the stored cloud's mean; the renders use the same frame.
            means = to_camera_frame(dense - cloud.mean(axis=0))
            colours = _colours(dense_parts, dense[:, 1], rng)
            camera_to_world = _camera_orbit(views, rng)
            images = _render_object(means, colours, camera_to_world, image_size, rng)

            model = f"{instance:04d}"
            folder = out / synset / model
            (folder / RENDER_FOLDER).mkdir(parents=True, exist_ok=True)
            (folder / "pts").mkdir(exist_ok=True)
            np.save(folder / "pts" / f"{synset}-{model}.npy", cloud.astype(np.float32))
            for view in range(views):
                Image.fromarray(images[view]).save(folder / RENDER_FOLDER / f"{view:02d}.png")
                np.savetxt(folder / RENDER_FOLDER / f"{view:02d}.txt", camera_to_world[view], fmt="%.9f")
            folders.append(folder)
    return folders
