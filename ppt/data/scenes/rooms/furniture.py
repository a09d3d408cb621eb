"""Furniture: pieces built from boxes and curtain sheets in a local frame (a piece's back is its
local +y), and their placement on the floor plan."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Box", "Sheet", "Piece", "BUILDERS", "WALL_ITEMS", "place", "uniform", "randint"]


@dataclass(frozen=True)
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    kind: str
    part: int = 0  # pieces with the same part number form one object (one instance)
    open_top: bool = False
    solid: bool = True  # hides other surfaces inside it


@dataclass(frozen=True)
class Sheet:
    """A curtain: vertical sheet over ``width`` x ``height`` at ``z0``, waving in depth."""

    origin: tuple[float, float, float]
    along: tuple[float, float, float]
    width: float
    height: float
    depth: float
    kind: str


@dataclass(frozen=True)
class Piece:
    """Furniture in a local frame: footprint [0, width] x [0, depth], back at y = depth."""

    width: float
    depth: float
    boxes: tuple[Box, ...]
    against_wall: bool


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high]."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _legs(width: float, depth: float, height: float, kind: str, thickness: float = 0.05) -> list[Box]:
    t = thickness
    return [Box((x, y, 0.0), (x + t, y + t, height), kind)
            for x in (0.0, width - t) for y in (0.0, depth - t)]


def _table(g: torch.Generator, kind: str = "table") -> Piece:
    w, d, h = uniform(g, 0.8, 1.8), uniform(g, 0.6, 1.0), uniform(g, 0.70, 0.76)
    return Piece(w, d, (Box((0, 0, h - 0.04), (w, d, h), kind), *_legs(w, d, h - 0.04, kind)), against_wall=False)


def _conference_table(g: torch.Generator) -> Piece:
    w, d, h = uniform(g, 2.4, 3.6), uniform(g, 1.0, 1.4), 0.74
    return Piece(w, d, (Box((0, 0, h - 0.05), (w, d, h), "table"),
                         Box((w * 0.3, d * 0.4, 0), (w * 0.7, d * 0.6, h - 0.05), "table")), against_wall=False)


def _desk(g: torch.Generator) -> Piece:
    w, d, h = uniform(g, 1.0, 1.6), uniform(g, 0.6, 0.8), 0.74
    boxes = [Box((0, 0, h - 0.03), (w, d, h), "desk"), Box((0, 0, 0), (0.03, d, h - 0.03), "desk"),
             Box((w - 0.45, 0, 0), (w, d, h - 0.03), "desk"),
             Box((w * 0.3, d - 0.35, h), (w * 0.3 + 0.5, d - 0.05, h + 0.35), "clutter", part=1)]  # monitor
    return Piece(w, d, tuple(boxes), against_wall=True)


def _chair(g: torch.Generator) -> Piece:
    w, d, seat = uniform(g, 0.42, 0.55), uniform(g, 0.42, 0.55), uniform(g, 0.42, 0.48)
    boxes = [Box((0, 0, seat - 0.05), (w, d, seat), "chair"),
             Box((0, d - 0.05, seat), (w, d, seat + uniform(g, 0.35, 0.5)), "chair"), *_legs(w, d, seat - 0.05, "chair", 0.04)]
    return Piece(w, d, tuple(boxes), against_wall=False)


def _sofa(g: torch.Generator) -> Piece:
    w, d = uniform(g, 1.6, 2.4), uniform(g, 0.8, 0.95)
    boxes = [Box((0.15, 0, 0), (w - 0.15, d - 0.2, 0.42), "sofa"), Box((0, d - 0.2, 0), (w, d, 0.85), "sofa"),
             Box((0, 0, 0), (0.15, d - 0.2, 0.6), "sofa"), Box((w - 0.15, 0, 0), (w, d - 0.2, 0.6), "sofa")]
    return Piece(w, d, tuple(boxes), against_wall=True)


def _bed(g: torch.Generator) -> Piece:
    w, d = uniform(g, 1.0, 1.8), uniform(g, 1.95, 2.1)
    boxes = [Box((0, 0, 0), (w, d - 0.05, 0.55), "bed"), Box((0, d - 0.05, 0), (w, d, 1.0), "bed")]
    pillows = 1 if w < 1.3 else 2
    for i in range(pillows):
        x0 = 0.1 + i * (w - 0.2) / pillows
        boxes.append(Box((x0, d - 0.5, 0.55), (x0 + (w - 0.2) / pillows - 0.05, d - 0.1, 0.68), "pillow", part=1 + i))
    return Piece(w, d, tuple(boxes), against_wall=True)


def _block(kind: str, width: tuple[float, float], depth: tuple[float, float], height: tuple[float, float],
           against_wall: bool = True):
    def build(g: torch.Generator) -> Piece:
        w, d, h = uniform(g, *width), uniform(g, *depth), uniform(g, *height)
        return Piece(w, d, (Box((0, 0, 0), (w, d, h), kind),), against_wall)
    return build


def _bookshelf(g: torch.Generator) -> Piece:
    w, d, h = uniform(g, 0.8, 1.6), uniform(g, 0.3, 0.4), uniform(g, 1.5, 2.2)
    t = 0.025
    boxes = [Box((0, 0, 0), (t, d, h), "bookshelf"), Box((w - t, 0, 0), (w, d, h), "bookshelf"),
             Box((0, d - t, 0), (w, d, h), "bookshelf")]
    shelves = max(2, int(h / 0.38))
    for i in range(shelves + 1):
        z = i * (h - t) / shelves
        boxes.append(Box((t, 0, z), (w - t, d - t, z + t), "bookshelf"))
        if i < shelves and bool(torch.rand((), generator=g) < 0.7):  # a row of books
            x1 = t + uniform(g, 0.3, 0.9) * (w - 2 * t)
            boxes.append(Box((t, 0.04, z + t), (x1, d - t, z + t + uniform(g, 0.18, 0.28)), "clutter", part=1 + i))
    return Piece(w, d, tuple(boxes), against_wall=True)


def _counter(g: torch.Generator) -> Piece:
    w, d, h = uniform(g, 1.6, 3.0), 0.62, 0.88
    x0 = uniform(g, 0.3, w - 0.9)
    x1 = x0 + 0.6
    boxes = [Box((0, 0, 0), (w, d, 0.7), "counter"),  # body, and the worktop around the basin
             Box((0, 0, 0.7), (x0, d, h), "counter"), Box((x1, 0, 0.7), (w, d, h), "counter"),
             Box((x0, 0, 0.7), (x1, 0.1, h), "counter"), Box((x0, d - 0.1, 0.7), (x1, d, h), "counter"),
             Box((x0, 0.1, 0.72), (x1, d - 0.1, h), "sink", part=1, open_top=True, solid=False),
             Box((0, d - 0.35, 1.45), (w, d, 2.1), "cabinet", part=2)]  # wall cabinets above
    return Piece(w, d, tuple(boxes), against_wall=True)


def _toilet(g: torch.Generator) -> Piece:
    return Piece(0.4, 0.7, (Box((0.02, 0, 0), (0.38, 0.5, 0.4), "toilet"),
                             Box((0, 0.5, 0), (0.4, 0.7, 0.8), "toilet")), against_wall=True)


def _bathroom_sink(g: torch.Generator) -> Piece:
    w = uniform(g, 0.5, 0.8)
    return Piece(w, 0.5, (Box((0.15, 0.2, 0), (w - 0.15, 0.45, 0.7), "sink"),
                           Box((0, 0, 0.7), (w, 0.5, 0.88), "sink", open_top=True, solid=False)), against_wall=True)


def _bathtub(g: torch.Generator) -> Piece:
    w = uniform(g, 1.5, 1.8)
    boxes = (Box((0, 0, 0), (w, 0.75, 0.55), "bathtub", open_top=True, solid=False),
             Box((0.05, 0.05, 0.05), (w - 0.05, 0.7, 0.55), "bathtub", open_top=True, solid=False),
             Box((0, -0.02, 0.6), (w, 0.0, 2.0), "shower curtain", part=1, solid=False))
    return Piece(w, 0.75, boxes, against_wall=True)


def _lamp(g: torch.Generator) -> Piece:
    return Piece(0.4, 0.4, (Box((0.17, 0.17, 0), (0.23, 0.23, 1.4), "lamp"),
                             Box((0, 0, 1.4), (0.4, 0.4, 1.7), "lamp"),
                             Box((0.05, 0.05, 0), (0.35, 0.35, 0.04), "lamp")), against_wall=False)


def _clutter(g: torch.Generator) -> Piece:
    w, d, h = uniform(g, 0.2, 0.6), uniform(g, 0.2, 0.5), uniform(g, 0.15, 0.7)
    return Piece(w, d, (Box((0, 0, 0), (w, d, h), "clutter"),), against_wall=False)


BUILDERS = {
    "table": _table, "conference_table": _conference_table, "desk": _desk, "chair": _chair, "sofa": _sofa,
    "bed": _bed, "bookshelf": _bookshelf, "counter": _counter, "toilet": _toilet, "sink": _bathroom_sink,
    "bathtub": _bathtub, "lamp": _lamp, "clutter": _clutter,
    "cabinet": _block("cabinet", (0.6, 1.4), (0.4, 0.6), (0.8, 2.0)),
    "dresser": _block("dresser", (0.9, 1.5), (0.45, 0.55), (0.75, 1.0)),
    "nightstand": _block("nightstand", (0.4, 0.5), (0.35, 0.45), (0.5, 0.6)),
    "refrigerator": _block("refrigerator", (0.6, 0.8), (0.65, 0.75), (1.7, 1.9)),
    "otherfurniture": _block("otherfurniture", (0.4, 1.2), (0.4, 0.8), (0.4, 1.2), against_wall=False),
}
# Kinds hung on walls rather than standing on the floor.
WALL_ITEMS = {"picture": ((0.4, 1.2), (0.4, 0.9), (1.2, 1.6)), "board": ((1.5, 2.6), (0.9, 1.2), (0.85, 1.0)),
               "mirror": ((0.5, 0.9), (0.6, 0.9), (1.0, 1.3)), "television": ((0.9, 1.4), (0.55, 0.8), (1.0, 1.3))}


def _rotate_xy(x: float, y: float, quarter_turns: int) -> tuple[float, float]:
    return [(x, y), (-y, x), (-x, -y), (y, -x)][quarter_turns % 4]


def place(piece: Piece, quarter_turns: int, corner: tuple[float, float]) -> list[Box]:
    """The piece's boxes turned by ``quarter_turns`` x 90 degrees, footprint's min corner at ``corner``."""
    corners = [_rotate_xy(x, y, quarter_turns) for x in (0.0, piece.width) for y in (0.0, piece.depth)]
    shift = (corner[0] - min(c[0] for c in corners), corner[1] - min(c[1] for c in corners))
    placed = []
    for box in piece.boxes:
        a = _rotate_xy(box.lo[0], box.lo[1], quarter_turns)
        b = _rotate_xy(box.hi[0], box.hi[1], quarter_turns)
        lo = (min(a[0], b[0]) + shift[0], min(a[1], b[1]) + shift[1], box.lo[2])
        hi = (max(a[0], b[0]) + shift[0], max(a[1], b[1]) + shift[1], box.hi[2])
        placed.append(Box(lo, hi, box.kind, box.part, box.open_top, box.solid))
    return placed
