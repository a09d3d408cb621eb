"""Synthetic point clouds with the structure of real scans (surfaces, not volumetric noise), for
benchmarks and tests that must run without downloading datasets."""

from __future__ import annotations

import torch
from torch import Tensor


_FACE_NORMALS = torch.tensor([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=torch.float64)


def box_surface(lo: Tensor, hi: Tensor, count: int, generator: torch.Generator, open_top: bool = False,
                open_bottom: bool = False) -> tuple[Tensor, Tensor]:
    """``count`` points uniformly on the faces of the axis-aligned box [lo, hi] (area-weighted),
    with their outward normals: two ``(count, 3)`` float64 tensors. ``open_top`` / ``open_bottom``
    leave out the face at ``hi[2]`` / ``lo[2]``."""
    size = hi - lo
    areas = torch.stack([size[1] * size[2], size[1] * size[2], size[0] * size[2], size[0] * size[2],
                         size[0] * size[1], size[0] * size[1]])
    if open_top:
        areas[5] = 0
    if open_bottom:
        areas[4] = 0
    if count == 0 or not bool((areas > 0).any()):
        empty = torch.zeros(0, 3, dtype=torch.float64)
        return empty, empty.clone()
    face = torch.multinomial(areas, count, replacement=True, generator=generator)
    uvw = torch.rand(count, 3, generator=generator, dtype=torch.float64)
    points = lo + uvw * size
    axis = face // 2
    at_high = (face % 2).bool()
    fixed = torch.where(at_high, hi[axis], lo[axis])
    points[torch.arange(count), axis] = fixed
    return points, _FACE_NORMALS[face]


def rectangle(origin: Tensor, u: Tensor, v: Tensor, normal: Tensor, count: int,
              generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` points uniformly on the parallelogram ``origin + a u + b v`` (a, b in [0, 1]),
    all with ``normal``: two ``(count, 3)`` float64 tensors."""
    ab = torch.rand(count, 2, generator=generator, dtype=torch.float64)
    points = origin + ab[:, :1] * u + ab[:, 1:] * v
    return points, normal.to(torch.float64).expand(count, 3).clone()


def indoor_room(num_points: int, *, seed: int = 0, size: tuple[float, float, float] = (8.0, 6.0, 3.0),
                furniture: int = 12, noise: float = 0.005) -> Tensor:
    """An indoor scan of ``num_points`` points (float32, metres): floor, walls and ceiling of a room
    of ``size`` plus ``furniture`` boxes standing on the floor, with Gaussian sensor noise."""
    generator = torch.Generator().manual_seed(seed)
    extent = torch.tensor(size, dtype=torch.float64)
    shell = num_points // 2
    points = [box_surface(torch.zeros(3, dtype=torch.float64), extent, shell, generator)[0]]
    remaining = num_points - shell
    per_box = [remaining // furniture + (1 if i < remaining % furniture else 0) for i in range(furniture)]
    for count in per_box:
        footprint = 0.3 + 1.2 * torch.rand(2, generator=generator, dtype=torch.float64)
        height = 0.4 + 1.4 * torch.rand(1, generator=generator, dtype=torch.float64)
        corner = torch.rand(2, generator=generator, dtype=torch.float64) * (extent[:2] - footprint)
        lo = torch.cat([corner, torch.zeros(1, dtype=torch.float64)])
        hi = torch.cat([corner + footprint, height])
        points.append(box_surface(lo, hi, count, generator)[0])
    cloud = torch.cat(points)
    cloud += noise * torch.randn(cloud.shape, generator=generator, dtype=torch.float64)
    return cloud.float()


def object_clouds(batches: int, num_points: int, *, seed: int = 0) -> Tensor:
    """``(batches, num_points, 3)`` float32 object-scale clouds (ShapeNet/ModelNet-like, unit
    sphere): each is the surface of a random box joined with a random ellipsoid."""
    generator = torch.Generator().manual_seed(seed)
    clouds = []
    for _ in range(batches):
        half = num_points // 2
        lo = -0.2 - 0.6 * torch.rand(3, generator=generator, dtype=torch.float64)
        hi = 0.2 + 0.6 * torch.rand(3, generator=generator, dtype=torch.float64)
        box = box_surface(lo, hi, half, generator)[0]
        direction = torch.randn(num_points - half, 3, generator=generator, dtype=torch.float64)
        direction /= direction.norm(dim=1, keepdim=True)
        radii = 0.2 + 0.5 * torch.rand(3, generator=generator, dtype=torch.float64)
        ellipsoid = direction * radii + 0.3 * torch.randn(3, generator=generator, dtype=torch.float64)
        cloud = torch.cat([box, ellipsoid])
        cloud -= cloud.mean(0)
        cloud /= cloud.norm(dim=1).max()
        clouds.append(cloud[torch.randperm(num_points, generator=generator)])
    return torch.stack(clouds).float()
