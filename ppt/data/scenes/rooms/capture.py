"""Capture simulation: a layout's surfaces sampled as points with normals, the points no real
capture sees left out, and the flavor's colours, noise and holes applied."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ppt.data.scenes.rooms.flavors import PALETTE, RoomFlavor
from ppt.data.scenes.rooms.furniture import Sheet, randint, uniform
from ppt.data.scenes.rooms.layouts import WALL_INWARD, Layout
from ppt.data.synthetic import box_surface, rectangle

__all__ = ["sample_surfaces", "visible_points", "surface_colors", "simulate_capture"]


@dataclass
class _Surfaces:
    points: list[Tensor] = field(default_factory=list)
    normals: list[Tensor] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # per chunk
    objects: list[int] = field(default_factory=list)  # per chunk
    owners: list[int] = field(default_factory=list)  # per chunk: the solid box it belongs to (-1 none)

    def add(self, points: Tensor, normals: Tensor, kind: str, obj: int, owner: int = -1) -> None:
        self.points.append(points)
        self.normals.append(normals)
        self.kinds.append(kind)
        self.objects.append(obj)
        self.owners.append(owner)


def _count(area: float, density: float, g: torch.Generator) -> int:
    """Points on ``area`` at ``density`` per m^2 (stochastic rounding keeps small parts fair)."""
    expected = area * density
    return int(expected) + int(float(torch.rand((), generator=g)) < expected - int(expected))


def _wall_surfaces(layout: Layout, surfaces: _Surfaces, g: torch.Generator, density: float, wall_object: int) -> None:
    """Walls with their openings cut out, door leaves, window glass and sills."""
    for wall in range(4):
        length = layout.wall_length(wall)
        start = torch.tensor([*layout.wall_point(wall, 0.0), 0.0], dtype=torch.float64)
        end = torch.tensor([*layout.wall_point(wall, length), 0.0], dtype=torch.float64)
        along = (end - start) / length
        inward = torch.tensor([*WALL_INWARD[wall], 0.0], dtype=torch.float64)
        up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        points, normals = rectangle(start, end - start, up * layout.height, inward,
                                    _count(length * layout.height, density, g), g)
        t, z = (points - start) @ along, points[:, 2]
        keep = torch.ones(len(points), dtype=torch.bool)
        for o in layout.openings:
            if o.wall == wall and o.kind in ("door", "window"):
                keep &= ~((t > o.start) & (t < o.end) & (z > o.bottom) & (z < o.top))
        surfaces.add(points[keep], normals[keep], "wall", wall_object + wall)
        for o in layout.openings:
            if o.wall != wall or o.kind not in ("door", "window"):
                continue
            inset = 0.05 if o.kind == "door" else 0.12  # the leaf / glass sits inside the wall's thickness
            corner = start + along * o.start - inward * inset + up * o.bottom
            width, height = o.end - o.start, o.top - o.bottom
            leaf, leaf_normals = rectangle(corner, along * width, up * height, inward, _count(width * height, density, g), g)
            obj = layout.objects
            layout.objects += 1
            surfaces.add(leaf, leaf_normals, o.kind if o.kind == "door" else "glass", obj)
            for side, sign in ((o.start, 1.0), (o.end, -1.0)):  # reveals: the wall's thickness at the jambs
                origin = start + along * side - inward * inset + up * o.bottom
                jamb, jamb_normals = rectangle(origin, inward * inset, up * height, along * sign,
                                               _count(inset * height, density, g), g)
                surfaces.add(jamb, jamb_normals, "wall", wall_object + wall)
            if o.kind == "window":  # sill
                lo = start + along * o.start + up * (o.bottom - 0.03)
                hi = start + along * o.end + inward * 0.05 + up * o.bottom
                a, b = torch.minimum(lo, hi), torch.maximum(lo, hi)
                sill, sill_normals = box_surface(a, b, _count(_box_area(a, b), density, g), g)
                surfaces.add(sill, sill_normals, "window", obj)


def _box_area(lo: Tensor, hi: Tensor, open_top: bool = False) -> float:
    s = (hi - lo).tolist()
    return 2 * (s[0] * s[1] + s[1] * s[2] + s[0] * s[2]) - (s[0] * s[1] if open_top else 0.0)


def _sheet_surface(sheet: Sheet, count: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """A curtain: points ``origin + a along + z up + depth sin(2 pi a / 0.25) inward`` with normals."""
    along = torch.tensor(sheet.along, dtype=torch.float64)
    inward = torch.stack([-along[1], along[0], torch.zeros((), dtype=torch.float64)])
    ab = torch.rand(count, 2, generator=g, dtype=torch.float64)
    a, z = ab[:, 0] * sheet.width, ab[:, 1] * sheet.height
    phase = 2 * math.pi * a / 0.25
    wave = sheet.depth * 0.5 * (1 + torch.sin(phase))
    points = torch.tensor(sheet.origin, dtype=torch.float64) + a[:, None] * along + z[:, None] * torch.tensor(
        [0.0, 0.0, 1.0], dtype=torch.float64) + wave[:, None] * inward
    slope = sheet.depth * 0.5 * torch.cos(phase) * 2 * math.pi / 0.25  # d(wave)/d(a)
    normals = inward - slope[:, None] * along
    return points, normals / normals.norm(dim=1, keepdim=True)


def sample_surfaces(layout: Layout, g: torch.Generator, density: float) -> _Surfaces:
    surfaces = _Surfaces()
    shell = layout.objects
    layout.objects += 6  # floor, ceiling, four walls
    w, d, h = layout.width, layout.depth, layout.height
    zero = torch.zeros(3, dtype=torch.float64)
    ex, ey, ez = torch.eye(3, dtype=torch.float64)
    surfaces.add(*rectangle(zero, ex * w, ey * d, ez, _count(w * d, density, g), g), "floor", shell)
    surfaces.add(*rectangle(ez * h, ex * w, ey * d, -ez, _count(w * d, density, g), g), "ceiling", shell + 1)
    _wall_surfaces(layout, surfaces, g, density, shell + 2)
    for index, (box, obj) in enumerate(layout.boxes):
        lo, hi = torch.tensor(box.lo, dtype=torch.float64), torch.tensor(box.hi, dtype=torch.float64)
        points, normals = box_surface(lo, hi, _count(_box_area(lo, hi, box.open_top), density, g), g,
                                      open_top=box.open_top)
        surfaces.add(points, normals, box.kind, obj, owner=index)
    for sheet, obj in layout.sheets:
        surfaces.add(*_sheet_surface(sheet, _count(sheet.width * sheet.height * 1.3, density, g), g), sheet.kind, obj)
    return surfaces


def visible_points(points: Tensor, normals: Tensor, owner: Tensor, layout: Layout) -> Tensor:
    """Points a capture can see: not inside another solid box, not a back pressed against a wall,
    not a face looking down below eye height (the ceiling and things above 1.5 m are seen)."""
    visible = torch.ones(len(points), dtype=torch.bool)
    shell = torch.tensor([layout.width, layout.depth, layout.height], dtype=torch.float64)
    for index, (box, _) in enumerate(layout.boxes):
        if not box.solid:
            continue
        # Shrunk so that touching surfaces stay, but grown across the room's floor and walls
        # where it stands against them, so the floor under it and the wall behind it are hidden.
        lo = torch.tensor(box.lo, dtype=torch.float64)
        hi = torch.tensor(box.hi, dtype=torch.float64)
        lo = torch.where(lo <= 0.005, lo - 0.05, lo + 0.005)
        hi = torch.where(hi >= shell - 0.005, hi + 0.05, hi - 0.005)
        inside = ((points > lo) & (points < hi)).all(1) & (owner != index)
        visible &= ~inside
    x, y = points[:, 0], points[:, 1]
    near_wall = torch.stack([y < 0.03, x > layout.width - 0.03, y > layout.depth - 0.03, x < 0.03], dim=1)
    inward = torch.tensor(WALL_INWARD, dtype=torch.float64)  # (4, 2)
    faces_wall = (normals[:, None, :2] * inward).sum(-1) < -0.9  # normal points into the wall
    visible &= ~((near_wall & faces_wall).any(1) & (owner >= 0))
    visible &= ~((normals[:, 2] < -0.7) & (points[:, 2] < 1.5))
    return visible


def _smooth_field(points: Tensor, g: torch.Generator, waves: int = 3) -> Tensor:
    """A smooth random field in [0, 1] over space: a sum of random plane waves of ~2-5 m."""
    value = torch.zeros(len(points), dtype=torch.float64)
    for _ in range(waves):
        direction = torch.randn(3, generator=g, dtype=torch.float64)
        direction = direction / direction.norm() * (2 * math.pi / uniform(g, 2.0, 5.0))
        value += torch.sin(points @ direction + uniform(g, 0, 2 * math.pi))
    return 0.5 + 0.5 * value / waves


def surface_colors(kinds: Sequence[str], objects: Sequence[int], counts: Sequence[int], points: Tensor, normals: Tensor,
            flavor: RoomFlavor, g: torch.Generator) -> Tensor:
    base = []
    per_object: dict[int, Tensor] = {}
    for kind, obj, count in zip(kinds, objects, counts):
        if obj not in per_object:
            palette = PALETTE["window" if kind == "glass" else kind]
            rgb = torch.tensor(palette[randint(g, 0, len(palette) - 1)], dtype=torch.float64)
            per_object[obj] = (rgb * uniform(g, 0.85, 1.15)).clamp(0, 255)
        base.append(per_object[obj].expand(count, 3))
    rgb = torch.cat(base) if base else torch.zeros(0, 3, dtype=torch.float64)
    gray = rgb.mean(1, keepdim=True)
    rgb = gray + (rgb - gray) * flavor.saturation
    rgb = rgb * uniform(g, *flavor.brightness) * torch.tensor(flavor.tint, dtype=torch.float64)
    light = torch.tensor([0.3, 0.2, 0.93], dtype=torch.float64)
    shade = 1 - flavor.shading * (1 - (normals @ light).clamp(min=0))
    falloff = 1 - flavor.lighting * _smooth_field(points, g)
    rgb = rgb * (shade * falloff)[:, None]
    if flavor.color_noise > 0:
        rgb = rgb + flavor.color_noise * torch.randn(rgb.shape, generator=g, dtype=torch.float64)
    return rgb.clamp(0, 255).round()


def simulate_capture(points: Tensor, kinds: Tensor, layout: Layout, flavor: RoomFlavor,
             glass: int, ceiling: int, g: torch.Generator) -> Tensor:
    """Which points a sensor of this flavor records (holes, uneven density, glass, ceiling)."""
    keep = torch.ones(len(points), dtype=torch.bool)
    if flavor.density_variation > 0:
        keep &= torch.rand(len(points), generator=g, dtype=torch.float64) >= flavor.density_variation * _smooth_field(points, g)
    area = 2 * (layout.width * layout.depth + layout.height * (layout.width + layout.depth))
    holes = int(torch.poisson(torch.tensor(flavor.holes_per_m2 * area, dtype=torch.float64), generator=g))
    for _ in range(holes):
        center = points[randint(g, 0, len(points) - 1)] if len(points) else torch.zeros(3, dtype=torch.float64)
        keep &= (points - center).norm(dim=1) > uniform(g, 0.1, 0.45)
    if flavor.glass_keep < 1:
        keep &= (kinds != glass) | (torch.rand(len(points), generator=g, dtype=torch.float64) < flavor.glass_keep)
    if flavor.ceiling_band is not None:
        x, y = points[:, 0], points[:, 1]
        to_wall = torch.stack([x, y, layout.width - x, layout.depth - y], dim=1).amin(1)
        keep &= (kinds != ceiling) | (to_wall < flavor.ceiling_band)
    return keep
