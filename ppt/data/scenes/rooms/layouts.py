"""Room layouts: the shell (floor, walls with door and window openings, ceiling, beams and
columns) and the furniture set on its floor plan or hung on its walls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ppt.data.scenes.rooms.flavors import RoomFlavor
from ppt.data.scenes.rooms.furniture import BUILDERS, WALL_ITEMS, Box, Piece, Sheet, place, randint, uniform

__all__ = ["Layout", "WALL_INWARD", "add_openings", "furnish", "add_structure"]


# Walls: 0 at y = 0, 1 at x = W, 2 at y = D, 3 at x = 0. The turn that puts a piece's back
# (local +y) against wall s, and the wall's inward normal.
_BACK_TO_WALL_TURNS = (2, 3, 0, 1)
WALL_INWARD = ((0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (1.0, 0.0))


@dataclass
class _Opening:
    wall: int
    start: float  # along the wall, from its start corner
    end: float
    bottom: float
    top: float
    kind: str  # "door" or "window"


@dataclass
class Layout:
    width: float
    depth: float
    height: float
    openings: list[_Opening] = field(default_factory=list)
    boxes: list[tuple[Box, int]] = field(default_factory=list)  # (box, object id)
    sheets: list[tuple[Sheet, int]] = field(default_factory=list)
    footprints: list[tuple[float, float, float, float]] = field(default_factory=list)  # occupied x0, y0, x1, y1
    objects: int = 0

    def wall_length(self, wall: int) -> float:
        return self.width if wall % 2 == 0 else self.depth

    def wall_point(self, wall: int, t: float, offset: float = 0.0) -> tuple[float, float]:
        """Floor-plan point ``t`` along ``wall`` and ``offset`` into the room."""
        start = ((0.0, 0.0), (self.width, 0.0), (self.width, self.depth), (0.0, self.depth))[wall]
        direction = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[wall]
        inward = WALL_INWARD[wall]
        return (start[0] + t * direction[0] + offset * inward[0], start[1] + t * direction[1] + offset * inward[1])

    def free(self, x0: float, y0: float, x1: float, y1: float, clearance: float = 0.05) -> bool:
        if x0 < -1e-9 or y0 < -1e-9 or x1 > self.width + 1e-9 or y1 > self.depth + 1e-9:
            return False
        return all(x1 + clearance <= a0 or a1 + clearance <= x0 or y1 + clearance <= b0 or b1 + clearance <= y0
                   for a0, b0, a1, b1 in self.footprints)

    def add_object(self, boxes: Sequence[Box]) -> None:
        ids = {}
        for box in boxes:
            if box.part not in ids:
                ids[box.part] = self.objects
                self.objects += 1
            self.boxes.append((box, ids[box.part]))

    def wall_span_free(self, wall: int, start: float, end: float, bottom: float, top: float) -> bool:
        return all(o.wall != wall or end + 0.1 <= o.start or o.end + 0.1 <= start or top <= o.bottom or o.top <= bottom
                   for o in self.openings)


def add_openings(layout: Layout, g: torch.Generator, room_type: str) -> None:
    doors = 1 if room_type not in ("hallway", "conferenceRoom", "lounge") else 2
    windows = 0 if room_type in ("hallway", "storage", "WC", "copyRoom") else randint(g, 1, 3)
    for kind, count, width, bottom, top in (("door", doors, (0.8, 1.0), (0.0, 0.0), (2.0, 2.1)),
                                            ("window", windows, (0.8, 1.8), (0.8, 1.0), (1.9, 2.2))):
        for _ in range(count):
            for _attempt in range(20):
                wall = randint(g, 0, 3)
                w = uniform(g, *width)
                length = layout.wall_length(wall)
                if length < w + 0.6:
                    continue
                start = uniform(g, 0.3, length - w - 0.3)
                z0, z1 = uniform(g, *bottom), min(uniform(g, *top), layout.height - 0.15)
                if layout.wall_span_free(wall, start, start + w, z0, z1):
                    layout.openings.append(_Opening(wall, start, start + w, z0, z1, kind))
                    if kind == "door":  # keep the way through the door clear of furniture
                        a = layout.wall_point(wall, start)
                        b = layout.wall_point(wall, start + w, 1.0)
                        layout.footprints.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
                    break


def _place_piece(layout: Layout, g: torch.Generator, piece: Piece) -> list[Box] | None:
    """Put ``piece`` against a random wall (or anywhere when it stands free); None when it does not fit."""
    for _attempt in range(30):
        if piece.against_wall:
            wall = randint(g, 0, 3)
            turns = _BACK_TO_WALL_TURNS[wall]
            length = layout.wall_length(wall)
            if length < piece.width + 0.1:
                continue
            t = uniform(g, 0.05, length - piece.width - 0.05)
            a = layout.wall_point(wall, t)
            b = layout.wall_point(wall, t + piece.width, piece.depth)
            corner = (min(a[0], b[0]), min(a[1], b[1]))
        else:
            turns = randint(g, 0, 3)
            span = (piece.width, piece.depth) if turns % 2 == 0 else (piece.depth, piece.width)
            if span[0] > layout.width - 0.4 or span[1] > layout.depth - 0.4:
                continue
            corner = (uniform(g, 0.2, layout.width - span[0] - 0.2), uniform(g, 0.2, layout.depth - span[1] - 0.2))
        span = (piece.width, piece.depth) if turns % 2 == 0 else (piece.depth, piece.width)
        if piece.against_wall:
            tall = max(box.hi[2] for box in piece.boxes)
            blocked = any(o.wall == wall and o.bottom < tall and not (t + piece.width <= o.start or o.end <= t)
                          for o in layout.openings)
            if blocked:
                continue
        if layout.free(corner[0], corner[1], corner[0] + span[0], corner[1] + span[1]):
            layout.footprints.append((corner[0], corner[1], corner[0] + span[0], corner[1] + span[1]))
            return place(piece, turns, corner)
    return None


def furnish(layout: Layout, g: torch.Generator, flavor: RoomFlavor, room_type: str) -> None:
    for kind, (low, high) in flavor.room_types[room_type].items():
        for _ in range(randint(g, low, high)):
            if kind in WALL_ITEMS:
                _hang(layout, g, kind)
            elif kind == "curtain":
                _curtain(layout, g)
            else:
                builder = BUILDERS["conference_table" if (kind, room_type) == ("table", "conferenceRoom") else kind]
                boxes = _place_piece(layout, g, builder(g))
                if boxes is not None:
                    layout.add_object(boxes)


def _hang(layout: Layout, g: torch.Generator, kind: str) -> None:
    width, height, bottom = WALL_ITEMS[kind]
    for _attempt in range(20):
        wall = randint(g, 0, 3)
        w, h, z0 = uniform(g, *width), uniform(g, *height), uniform(g, *bottom)
        length = layout.wall_length(wall)
        if length < w + 0.4 or z0 + h > layout.height - 0.1:
            continue
        t = uniform(g, 0.2, length - w - 0.2)
        if not layout.wall_span_free(wall, t, t + w, z0, z0 + h):
            continue
        thickness = 0.06 if kind == "television" else 0.02
        a, b = layout.wall_point(wall, t), layout.wall_point(wall, t + w, thickness)
        layout.add_object([Box((min(a[0], b[0]), min(a[1], b[1]), z0), (max(a[0], b[0]), max(a[1], b[1]), z0 + h), kind)])
        layout.openings.append(_Opening(wall, t, t + w, z0, z0 + h, kind))  # nothing else hangs there
        return


def _curtain(layout: Layout, g: torch.Generator) -> None:
    windows = [o for o in layout.openings if o.kind == "window"]
    if not windows:
        return
    window = windows[randint(g, 0, len(windows) - 1)]
    start, end = window.start - 0.15, window.end + 0.15
    origin = layout.wall_point(window.wall, max(start, 0.0), 0.08)
    direction = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[window.wall]
    width = min(end, layout.wall_length(window.wall)) - max(start, 0.0)
    sheet = Sheet((origin[0], origin[1], 0.05), (direction[0], direction[1], 0.0), width,
                   min(window.top + 0.3, layout.height - 0.05) - 0.05, 0.05, "curtain")
    layout.sheets.append((sheet, layout.objects))
    layout.objects += 1


def add_structure(layout: Layout, g: torch.Generator, flavor: RoomFlavor) -> None:
    """S3DIS-style beams across the ceiling and columns against the walls."""
    for _ in range(randint(g, *flavor.beams)):
        y0 = uniform(g, 0.5, layout.depth - 0.9)
        depth = uniform(g, 0.3, 0.5)
        layout.add_object([Box((0.0, y0, layout.height - uniform(g, 0.3, 0.6)), (layout.width, y0 + depth, layout.height), "beam")])
    for _ in range(randint(g, *flavor.columns)):
        side = uniform(g, 0.3, 0.6)
        piece = Piece(side, side, (Box((0, 0, 0), (side, side, layout.height), "column"),), against_wall=True)
        boxes = _place_piece(layout, g, piece)
        if boxes is not None:
            layout.add_object(boxes)
