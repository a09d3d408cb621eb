"""Synthetic RGB-D frames of the synthetic ScanNet rooms: the embedded data of UniPre3D's scene
level, in the layout :class:`ppt.data.ScanNetFrames` reads.

The rooms are :func:`ppt.data.scenes.rooms.write_synthetic_rooms`'s ScanNet flavour, written in Pointcept's
layout under ``out``. Each room's stored points become dense ground-truth Gaussians
(:func:`ppt.data.renders.synthetic.splat_points`), rendered by ppt's rasterizer from a camera that
walks an ellipse around the room's centre at eye height, looking outwards and slightly down, so
consecutive frames overlap as in a hand-held scan. Colour frames (JPEG) and depth frames (uint16
millimetres, 0 where less than half a pixel is covered) are written under ``out/2D`` with their
camera-to-world poses and ScanNet-style intrinsic files (square pixels, focal length 0.903 x the
width: ScanNet's depth camera, 577.87 px at 640 px). The depth camera shares the colour camera's
pose and field of view at its own resolution.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from ppt.data.frames.scannet_frames import DEPTH_SCALE, resize_intrinsics
from ppt.data.renders.synthetic import look_at_camera_to_world, splat_points, to_uint8
from ppt.data.scenes.rooms import write_synthetic_rooms

__all__ = ["write_synthetic_frames", "room_camera_path"]

FOCAL_PER_WIDTH = 577.870605 / 640.0
"""ScanNet depth camera's focal length over its image width."""
EYE_HEIGHT = 1.4
"""Camera height above the room's lowest point, in metres (clamped below the ceiling)."""
NEAR_PLANE = 0.05
"""Renderer depth culling: the official loader's smallest valid depth."""
DOWN_TILT = 0.35
"""Downward slope of the view direction (rise over run)."""


def room_camera_path(coord: np.ndarray, frames: int) -> np.ndarray:
    """``(frames, 4, 4)`` camera-to-world matrices (OpenCV axes, z up in the world) walking once
    around the ellipse at a quarter of the room's extent, looking outwards and slightly down."""
    low, high = coord.min(axis=0), coord.max(axis=0)
    centre, half = (low + high) / 2, (high - low) / 2
    height = low[2] + min(EYE_HEIGHT, 0.75 * (high[2] - low[2]))
    poses = []
    for frame in range(frames):
        angle = 2 * math.pi * frame / frames
        position = np.array([centre[0] + 0.25 * half[0] * math.cos(angle),
                             centre[1] + 0.25 * half[1] * math.sin(angle), height])
        heading = angle + 0.6  # a little ahead of the outward direction: the view sweeps the walls
        target = position + np.array([math.cos(heading), math.sin(heading), -DOWN_TILT])
        poses.append(look_at_camera_to_world(position, target, np.array([0.0, 0.0, 1.0])))
    return np.stack(poses)


def _resized(K: np.ndarray, size: tuple[int, int], frames: int) -> torch.Tensor:
    """A ScanNet intrinsic matrix in ppt's convention, repeated for every frame."""
    return resize_intrinsics(K[:3, :3], size, size).expand(frames, 3, 3)


def _scannet_intrinsics(width: int, height: int) -> np.ndarray:
    """4 x 4 intrinsic matrix as ScanNet writes it (pixel centres on integers)."""
    focal = FOCAL_PER_WIDTH * width
    matrix = np.eye(4)
    matrix[0, 0] = matrix[1, 1] = focal
    matrix[0, 2], matrix[1, 2] = (width - 1) / 2, (height - 1) / 2
    return matrix


def write_synthetic_frames(out: str | PathLike, scenes: int, *, frames: int = 60, size: tuple[int, int] = (320, 240),
                           depth_size: tuple[int, int] = (160, 120), seed: int = 0, density: float = 1.0) -> list[Path]:
    """Write ``scenes`` synthetic ScanNet rooms under ``out`` (Pointcept layout) and ``frames`` RGB-D
    frames of each under ``out/2D`` (module docstring); return the scene folders.

    Args:
        frames: frames per room.
        size: ``(width, height)`` of the colour frames; ``depth_size``: of the depth frames.
        seed: the same seed writes the same files.
        density: multiplier of the rooms' points per square metre.
    """
    from PIL import Image

    if frames < 2:
        raise ValueError(f"write_synthetic_frames: frames must be >= 2, got {frames}")
    for name, value in (("size", size), ("depth_size", depth_size)):
        if len(value) != 2 or min(value) < 1:
            raise ValueError(f"write_synthetic_frames: {name} must be (width, height) >= 1, got {value}")
    out = Path(out)
    folders = write_synthetic_rooms(out, "scannet", scenes, seed=seed, density=density)
    for number, folder in enumerate(folders):
        rng = np.random.default_rng([seed, number])
        coord = np.load(folder / "coord.npy").astype(np.float64)
        colour = np.load(folder / "color.npy").astype(np.float64) / 255.0
        camera_to_world = room_camera_path(coord, frames)
        viewmats = torch.from_numpy(np.linalg.inv(camera_to_world).astype(np.float32))
        color_K, depth_K = _scannet_intrinsics(*size), _scannet_intrinsics(*depth_size)
        colours, _ = splat_points(coord, colour, viewmats, _resized(color_K, size, frames), *size, rng,
                                  near_plane=NEAR_PLANE)
        depths, coverage = splat_points(coord, colour, viewmats, _resized(depth_K, depth_size, frames), *depth_size,
                                        rng, render_mode="ED", near_plane=NEAR_PLANE)
        # Millimetres where the surface covers most of the pixel; 0 (no measurement) elsewhere.
        depth_mm = torch.where(coverage > 0.5, depths * DEPTH_SCALE + 0.5, 0).clamp(max=65535)[..., 0]
        depth_mm = depth_mm.to(torch.int32).numpy().astype(np.uint16)
        colours = to_uint8(colours)
        scene = folder.name
        for kind in ("color", "depth", "pose", "intrinsic"):
            (out / "2D" / kind / scene).mkdir(parents=True, exist_ok=True)
        for frame in range(frames):
            Image.fromarray(colours[frame]).save(out / "2D" / "color" / scene / f"{frame}.jpg", quality=95)
            Image.fromarray(depth_mm[frame]).save(out / "2D" / "depth" / scene / f"{frame}.png")
            np.savetxt(out / "2D" / "pose" / scene / f"{frame}.txt", camera_to_world[frame], fmt="%.9f")
        np.savetxt(out / "2D" / "intrinsic" / scene / "intrinsic_color.txt", color_K, fmt="%.6f")
        np.savetxt(out / "2D" / "intrinsic" / scene / "intrinsic_depth.txt", depth_K, fmt="%.6f")
    return folders
