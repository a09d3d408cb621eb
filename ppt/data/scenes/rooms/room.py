"""One synthetic room: a layout of a flavor, furnished, sampled and captured."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ppt.data.scenes.rooms.capture import sample_surfaces, simulate_capture, surface_colors, visible_points
from ppt.data.scenes.rooms.flavors import RoomFlavor, resolve_flavor
from ppt.data.scenes.rooms.furniture import randint, uniform
from ppt.data.scenes.rooms.layouts import Layout, add_openings, add_structure, furnish
from ppt.data.scenes.sample import IGNORE_INDEX

__all__ = ["SyntheticRoom", "synthesize_room"]


@dataclass(frozen=True)
class SyntheticRoom:
    """One generated room: ``coord`` (N, 3) float32 metres, ``color`` (N, 3) uint8, ``normal``
    (N, 3) float32, ``segment`` (N,) int64 in the flavor's class order (-1 ignore), ``instance``
    (N,) int64 object ids, its ``room_type``, and what every point is: ``kind`` (N,) int64 into
    ``kind_names`` (``"wall"``, ``"sofa"``, ``"glass"`` ...), from which :meth:`labels` derives
    other label sets (ScanNet200's)."""

    coord: np.ndarray
    color: np.ndarray
    normal: np.ndarray
    segment: np.ndarray
    instance: np.ndarray
    room_type: str
    kind: np.ndarray
    kind_names: tuple[str, ...]

    def labels(self, class_names: Sequence[str], label_of_kind: Mapping[str, str]) -> np.ndarray:
        """(N,) int64 labels in the order of ``class_names``: each point's kind mapped through
        ``label_of_kind`` (kind -> class name; window glass counts as ``"window"``), ``-1`` for kinds
        it does not name."""
        table = np.array([class_names.index(label_of_kind[kind]) if kind in label_of_kind else IGNORE_INDEX
                          for kind in ("window" if k == "glass" else k for k in self.kind_names)], dtype=np.int64)
        return table[self.kind]


def synthesize_room(flavor: str | RoomFlavor, seed: int, *, density: float = 1.0, room_type: str | None = None,
                    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> SyntheticRoom:
    """Generate one furnished room of ``flavor`` (deterministic in ``seed``).

    Args:
        flavor: ``"scannet"``, ``"s3dis"``, ``"structured3d"`` or a :class:`RoomFlavor`.
        seed: the room's seed.
        density: multiplier of the flavor's points per square metre (e.g. 0.05 for tiny test rooms).
        room_type: one of the flavor's room types (default: drawn from the seed).
        origin: where the room's floor corner lies (aligned flavors place rooms within an area / house).
    """
    flavor = resolve_flavor(flavor)
    if not density > 0:
        raise ValueError(f"synthesize_room: density must be positive, got {density}")
    types = list(flavor.room_types)
    g = torch.Generator().manual_seed(seed)
    chosen = types[randint(g, 0, len(types) - 1)]
    if room_type is not None:
        if room_type not in flavor.room_types:
            raise ValueError(f"synthesize_room: {flavor.name} has no room type {room_type!r}; expected one of {types}")
        chosen = room_type
    (w0, w1), (d0, d1), (h0, h1) = flavor.size
    if chosen == "hallway":
        layout = Layout(uniform(g, 5.0, 10.0), uniform(g, 1.6, 2.4), uniform(g, h0, h1))
    elif chosen in ("WC", "bathroom", "pantry", "copyRoom", "storage"):
        layout = Layout(uniform(g, 2.0, 3.5), uniform(g, 1.8, 3.0), uniform(g, h0, h1))
    else:
        layout = Layout(uniform(g, w0, w1), uniform(g, d0, d1), uniform(g, h0, h1))
    add_openings(layout, g, chosen)
    add_structure(layout, g, flavor)
    furnish(layout, g, flavor, chosen)

    surfaces = sample_surfaces(layout, g, flavor.points_per_m2 * density)
    counts = [len(p) for p in surfaces.points]
    points, normals = torch.cat(surfaces.points), torch.cat(surfaces.normals)
    kind_names = sorted(set(surfaces.kinds))
    kinds = torch.repeat_interleave(torch.tensor([kind_names.index(k) for k in surfaces.kinds]), torch.tensor(counts))
    objects = torch.repeat_interleave(torch.tensor(surfaces.objects), torch.tensor(counts))
    owners = torch.repeat_interleave(torch.tensor(surfaces.owners), torch.tensor(counts))
    colors = surface_colors(surfaces.kinds, surfaces.objects, counts, points, normals, flavor, g)
    glass = kind_names.index("glass") if "glass" in kind_names else -1
    keep = visible_points(points, normals, owners, layout) & simulate_capture(
        points, kinds, layout, flavor, glass, kind_names.index("ceiling"), g)
    points, normals, colors, kinds, objects = points[keep], normals[keep], colors[keep], kinds[keep], objects[keep]

    if flavor.noise > 0:  # range noise along the normal, a little across it
        points = points + normals * (flavor.noise * torch.randn(len(points), 1, generator=g, dtype=torch.float64))
        points = points + (flavor.noise / 3) * torch.randn(points.shape, generator=g, dtype=torch.float64)
    if flavor.normal_noise > 0:
        normals = normals + flavor.normal_noise * torch.randn(normals.shape, generator=g, dtype=torch.float64)
        normals = normals / normals.norm(dim=1, keepdim=True).clamp(min=1e-12)
    if flavor.any_yaw:  # a scan's frame: any heading, coordinates from the scan's corner
        angle = uniform(g, 0, 2 * math.pi)
        c, s = math.cos(angle), math.sin(angle)
        rotation = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
        points, normals = points @ rotation.T, normals @ rotation.T
        points = points - points.amin(0) * torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    points = points + torch.tensor(origin, dtype=torch.float64)

    order = torch.randperm(len(points), generator=g)  # scans do not list points surface by surface
    room = SyntheticRoom(
        coord=points[order].numpy().astype(np.float32), color=colors[order].numpy().astype(np.uint8),
        normal=normals[order].numpy().astype(np.float32), segment=np.zeros(0, dtype=np.int64),
        instance=objects[order].numpy(), room_type=chosen, kind=kinds[order].numpy(), kind_names=tuple(kind_names))
    return dataclasses.replace(room, segment=room.labels(flavor.class_names, flavor.labels))
