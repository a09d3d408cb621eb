"""Procedural furnished rooms in the on-disk layout of ScanNet, S3DIS or Structured3D.

A room is a box shell (floor, walls with door and window openings, ceiling) furnished with
pieces built from boxes and curtain sheets, each piece a labelled object. Its surfaces are
sampled as coloured points with normals; a *flavor* then imitates one dataset:

==============  ==================  =================  ==================================
flavor          labels              geometry           capture
==============  ==================  =================  ==================================
``scannet``     ScanNet-20          homes, any yaw     RGB-D scan: noise, holes, uneven
                                                       density, ceiling mostly unseen,
                                                       dim warm colours
``s3dis``       S3DIS-13            offices, beams,    laser scan: dense, light noise,
                                    columns, aligned   few holes, greyish colours
``structured3d`` Structured3D-25    homes, aligned,    rendered: clean dense surfaces,
                                    rooms of a house   saturated flat-shaded colours
==============  ==================  =================  ==================================

Objects whose class is not in a dataset's label set are labelled as that dataset labels them
(``clutter`` / ``otherprop`` / ``otherfurniture``) or ignored (``-1``), e.g. ScanNet's ceiling,
pillows and lamps. Points hidden in any real capture (inside solid furniture, behind pieces
standing against a wall, faces looking down below eye height) are left out for every flavor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ppt.data.s3dis import S3DIS_CLASSES
from ppt.data.scannet import SCANNET_CLASSES
from ppt.data.scene import IGNORE_INDEX
from ppt.data.structured3d import STRUCTURED3D_CLASSES
from ppt.data.synthetic import box_surface, rectangle

__all__ = ["RoomFlavor", "SyntheticRoom", "FLAVORS", "synthesize_room", "write_synthetic_rooms"]


# --------------------------------------------------------------------------------------------
# Flavors


@dataclass(frozen=True)
class RoomFlavor:
    """How one dataset's scenes look. Generic object kinds (``"bookshelf"``, ``"pillow"``, ...)
    map to the dataset's class names through ``labels`` (kinds absent from it are ignored, -1)."""

    name: str
    class_names: tuple[str, ...]
    labels: Mapping[str, str]
    room_types: Mapping[str, Mapping[str, tuple[int, int]]]  # room type -> furniture kind -> count range
    size: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]  # width, depth, height ranges
    points_per_m2: float
    noise: float  # sensor noise std along the surface normal (m)
    normal_noise: float  # std of the perturbation of unit normals
    holes_per_m2: float  # missing patches (reflections, unscanned spots) per m^2 of surface
    density_variation: float  # 0: uniform sampling, 1: density swings to zero across the room
    ceiling_band: float | None  # only ceiling within this distance of a wall is captured (None: all)
    glass_keep: float  # fraction of window-glass points captured
    brightness: tuple[float, float]
    tint: tuple[float, float, float]  # white balance multiplier
    saturation: float
    color_noise: float  # per-point std (0-255)
    lighting: float  # strength of the smooth illumination falloff across the room
    shading: float  # strength of Lambert shading by normal
    beams: tuple[int, int] = (0, 0)
    columns: tuple[int, int] = (0, 0)
    any_yaw: bool = False  # scans are not axis-aligned

    def label_of(self, kind: str) -> int:
        name = self.labels.get(kind)
        return IGNORE_INDEX if name is None else self.class_names.index(name)


def _identity_labels(class_names: Sequence[str], **renamed: str) -> dict[str, str]:
    """Kinds named like a class map to it; ``renamed`` adds ``kind=class`` pairs."""
    return {**{name: name for name in class_names}, **{kind.replace("_", " "): name for kind, name in renamed.items()}}


_HOME_ROOMS = {
    "bedroom": {"bed": (1, 1), "nightstand": (1, 2), "dresser": (0, 1), "cabinet": (0, 1), "desk": (0, 1),
                "chair": (0, 1), "lamp": (0, 1), "picture": (1, 2), "curtain": (1, 2), "clutter": (1, 3)},
    "living_room": {"sofa": (1, 2), "table": (1, 1), "chair": (0, 2), "bookshelf": (0, 2), "cabinet": (0, 1),
                    "television": (0, 1), "lamp": (0, 1), "picture": (1, 3), "curtain": (0, 2),
                    "otherfurniture": (0, 1), "clutter": (1, 3)},
    "kitchen": {"counter": (1, 2), "refrigerator": (1, 1), "table": (0, 1), "chair": (0, 3), "cabinet": (0, 1),
                "clutter": (1, 3)},
    "bathroom": {"toilet": (1, 1), "sink": (1, 1), "bathtub": (0, 1), "mirror": (1, 1), "cabinet": (0, 1),
                 "clutter": (0, 2)},
}

SCANNET = RoomFlavor(
    name="scannet", class_names=SCANNET_CLASSES,
    labels=_identity_labels(SCANNET_CLASSES),
    room_types={**_HOME_ROOMS,
                "office": {"desk": (1, 3), "chair": (1, 3), "bookshelf": (0, 2), "cabinet": (0, 2), "table": (0, 1),
                           "picture": (0, 1), "otherfurniture": (0, 1), "clutter": (1, 3)}},
    size=((3.0, 6.5), (3.0, 5.5), (2.4, 2.8)),
    points_per_m2=1500.0, noise=0.008, normal_noise=0.15, holes_per_m2=0.05, density_variation=0.5,
    ceiling_band=0.4, glass_keep=0.2, brightness=(0.55, 0.85), tint=(1.06, 1.0, 0.88), saturation=0.8,
    color_noise=9.0, lighting=0.35, shading=0.1, any_yaw=True,
)

S3DIS = RoomFlavor(
    name="s3dis", class_names=S3DIS_CLASSES,
    labels={**_identity_labels(S3DIS_CLASSES, bookshelf="bookcase", desk="table"),
            **{kind: "clutter" for kind in ("cabinet", "picture", "lamp", "otherfurniture", "refrigerator",
                                             "counter", "sink", "toilet", "mirror", "television", "curtain")}},
    room_types={
        "office": {"table": (1, 2), "chair": (1, 3), "bookshelf": (1, 2), "board": (0, 1), "sofa": (0, 1),
                   "cabinet": (0, 1), "clutter": (2, 4)},
        "conferenceRoom": {"table": (1, 1), "chair": (4, 8), "board": (1, 2), "television": (0, 1), "clutter": (0, 2)},
        "hallway": {"bookshelf": (0, 1), "clutter": (0, 2)},
        "lounge": {"sofa": (1, 2), "table": (1, 2), "chair": (0, 2), "picture": (0, 1), "clutter": (0, 2)},
        "storage": {"bookshelf": (2, 3), "cabinet": (0, 2), "clutter": (3, 6)},
        "WC": {"toilet": (1, 2), "sink": (1, 1), "mirror": (1, 1), "clutter": (0, 1)},
        "pantry": {"counter": (1, 1), "refrigerator": (0, 1), "table": (0, 1), "chair": (0, 2), "clutter": (1, 3)},
        "copyRoom": {"otherfurniture": (1, 2), "table": (0, 1), "bookshelf": (0, 1), "clutter": (1, 3)},
    },
    size=((3.0, 7.0), (3.0, 6.0), (2.9, 3.4)),
    points_per_m2=4000.0, noise=0.003, normal_noise=0.05, holes_per_m2=0.01, density_variation=0.25,
    ceiling_band=None, glass_keep=0.4, brightness=(0.7, 0.95), tint=(1.0, 1.0, 1.0), saturation=0.55,
    color_noise=6.0, lighting=0.2, shading=0.1, beams=(0, 2), columns=(0, 2),
)

STRUCTURED3D = RoomFlavor(
    name="structured3d", class_names=STRUCTURED3D_CLASSES,
    labels={**_identity_labels(STRUCTURED3D_CLASSES, bookshelf="shelves"),
            "beam": "otherstructure", "column": "otherstructure", "clutter": "otherprop"},
    room_types={**_HOME_ROOMS,
                "study": {"desk": (1, 1), "chair": (1, 2), "bookshelf": (1, 2), "lamp": (0, 1), "picture": (0, 2),
                          "curtain": (0, 1), "clutter": (1, 2)},
                "dining_room": {"table": (1, 1), "chair": (2, 6), "cabinet": (0, 2), "lamp": (0, 1),
                                "picture": (0, 2), "curtain": (0, 1)}},
    size=((3.0, 7.0), (3.0, 6.0), (2.6, 3.0)),
    points_per_m2=3000.0, noise=0.0, normal_noise=0.0, holes_per_m2=0.0, density_variation=0.0,
    ceiling_band=None, glass_keep=1.0, brightness=(0.9, 1.05), tint=(1.0, 1.0, 1.0), saturation=1.25,
    color_noise=0.0, lighting=0.0, shading=0.2, columns=(0, 1),
)

FLAVORS: dict[str, RoomFlavor] = {flavor.name: flavor for flavor in (SCANNET, S3DIS, STRUCTURED3D)}

# Base colours (RGB 0-255) of each kind; an object takes one and varies it.
_PALETTE: dict[str, tuple[tuple[int, int, int], ...]] = {
    "wall": ((236, 232, 220), (215, 220, 225), (240, 226, 200), (200, 210, 190)),
    "floor": ((150, 105, 65), (120, 120, 120), (190, 160, 120), (90, 70, 60)),
    "ceiling": ((245, 245, 240),),
    "door": ((160, 110, 70), (235, 235, 230), (120, 80, 50)),
    "window": ((170, 200, 220), (240, 240, 240)),
    "beam": ((225, 225, 220),), "column": ((220, 220, 215),),
    "board": ((245, 245, 245), (40, 60, 50)),
    "picture": ((180, 60, 50), (60, 90, 150), (200, 170, 60), (40, 40, 40)),
    "curtain": ((170, 40, 50), (220, 210, 180), (60, 80, 120)), "shower curtain": ((230, 230, 240), (120, 180, 200)),
    "mirror": ((200, 210, 215),), "television": ((25, 25, 30),),
    "cabinet": ((140, 95, 60), (230, 230, 225), (100, 100, 105)), "dresser": ((130, 85, 50), (230, 225, 215)),
    "nightstand": ((140, 95, 60), (235, 235, 230)),
    "bed": ((235, 235, 240), (180, 190, 210), (200, 170, 150)), "pillow": ((250, 250, 250), (200, 80, 80)),
    "chair": ((60, 60, 65), (150, 100, 60), (200, 60, 40)), "sofa": ((100, 110, 130), (160, 140, 110), (60, 60, 60)),
    "table": ((150, 100, 60), (220, 220, 215), (90, 60, 40)), "desk": ((160, 120, 80), (225, 225, 220)),
    "bookshelf": ((140, 95, 60), (225, 225, 220)), "counter": ((200, 195, 185), (70, 70, 75)),
    "refrigerator": ((230, 230, 230), (170, 170, 175)), "toilet": ((245, 245, 245),),
    "sink": ((235, 235, 235), (190, 190, 195)), "bathtub": ((245, 245, 245),),
    "lamp": ((240, 220, 170), (50, 50, 50)), "otherfurniture": ((110, 130, 90), (160, 160, 160), (90, 60, 40)),
    "clutter": ((200, 60, 60), (60, 160, 80), (60, 80, 200), (220, 200, 80), (120, 120, 120)),
}


# --------------------------------------------------------------------------------------------
# Geometry: pieces of boxes in a local frame, placed on the floor plan


@dataclass(frozen=True)
class _Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    kind: str
    part: int = 0  # pieces with the same part number form one object (one instance)
    open_top: bool = False
    solid: bool = True  # hides other surfaces inside it


@dataclass(frozen=True)
class _Sheet:
    """A curtain: vertical sheet over ``width`` x ``height`` at ``z0``, waving in depth."""

    origin: tuple[float, float, float]
    along: tuple[float, float, float]
    width: float
    height: float
    depth: float
    kind: str


@dataclass(frozen=True)
class _Piece:
    """Furniture in a local frame: footprint [0, width] x [0, depth], back at y = depth."""

    width: float
    depth: float
    boxes: tuple[_Box, ...]
    against_wall: bool


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high]."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _legs(width: float, depth: float, height: float, kind: str, thickness: float = 0.05) -> list[_Box]:
    t = thickness
    return [_Box((x, y, 0.0), (x + t, y + t, height), kind)
            for x in (0.0, width - t) for y in (0.0, depth - t)]


def _table(g: torch.Generator, kind: str = "table") -> _Piece:
    w, d, h = _uniform(g, 0.8, 1.8), _uniform(g, 0.6, 1.0), _uniform(g, 0.70, 0.76)
    return _Piece(w, d, (_Box((0, 0, h - 0.04), (w, d, h), kind), *_legs(w, d, h - 0.04, kind)), against_wall=False)


def _conference_table(g: torch.Generator) -> _Piece:
    w, d, h = _uniform(g, 2.4, 3.6), _uniform(g, 1.0, 1.4), 0.74
    return _Piece(w, d, (_Box((0, 0, h - 0.05), (w, d, h), "table"),
                         _Box((w * 0.3, d * 0.4, 0), (w * 0.7, d * 0.6, h - 0.05), "table")), against_wall=False)


def _desk(g: torch.Generator) -> _Piece:
    w, d, h = _uniform(g, 1.0, 1.6), _uniform(g, 0.6, 0.8), 0.74
    boxes = [_Box((0, 0, h - 0.03), (w, d, h), "desk"), _Box((0, 0, 0), (0.03, d, h - 0.03), "desk"),
             _Box((w - 0.45, 0, 0), (w, d, h - 0.03), "desk"),
             _Box((w * 0.3, d - 0.35, h), (w * 0.3 + 0.5, d - 0.05, h + 0.35), "clutter", part=1)]  # monitor
    return _Piece(w, d, tuple(boxes), against_wall=True)


def _chair(g: torch.Generator) -> _Piece:
    w, d, seat = _uniform(g, 0.42, 0.55), _uniform(g, 0.42, 0.55), _uniform(g, 0.42, 0.48)
    boxes = [_Box((0, 0, seat - 0.05), (w, d, seat), "chair"),
             _Box((0, d - 0.05, seat), (w, d, seat + _uniform(g, 0.35, 0.5)), "chair"), *_legs(w, d, seat - 0.05, "chair", 0.04)]
    return _Piece(w, d, tuple(boxes), against_wall=False)


def _sofa(g: torch.Generator) -> _Piece:
    w, d = _uniform(g, 1.6, 2.4), _uniform(g, 0.8, 0.95)
    boxes = [_Box((0.15, 0, 0), (w - 0.15, d - 0.2, 0.42), "sofa"), _Box((0, d - 0.2, 0), (w, d, 0.85), "sofa"),
             _Box((0, 0, 0), (0.15, d - 0.2, 0.6), "sofa"), _Box((w - 0.15, 0, 0), (w, d - 0.2, 0.6), "sofa")]
    return _Piece(w, d, tuple(boxes), against_wall=True)


def _bed(g: torch.Generator) -> _Piece:
    w, d = _uniform(g, 1.0, 1.8), _uniform(g, 1.95, 2.1)
    boxes = [_Box((0, 0, 0), (w, d - 0.05, 0.55), "bed"), _Box((0, d - 0.05, 0), (w, d, 1.0), "bed")]
    pillows = 1 if w < 1.3 else 2
    for i in range(pillows):
        x0 = 0.1 + i * (w - 0.2) / pillows
        boxes.append(_Box((x0, d - 0.5, 0.55), (x0 + (w - 0.2) / pillows - 0.05, d - 0.1, 0.68), "pillow", part=1 + i))
    return _Piece(w, d, tuple(boxes), against_wall=True)


def _block(kind: str, width: tuple[float, float], depth: tuple[float, float], height: tuple[float, float],
           against_wall: bool = True):
    def build(g: torch.Generator) -> _Piece:
        w, d, h = _uniform(g, *width), _uniform(g, *depth), _uniform(g, *height)
        return _Piece(w, d, (_Box((0, 0, 0), (w, d, h), kind),), against_wall)
    return build


def _bookshelf(g: torch.Generator) -> _Piece:
    w, d, h = _uniform(g, 0.8, 1.6), _uniform(g, 0.3, 0.4), _uniform(g, 1.5, 2.2)
    t = 0.025
    boxes = [_Box((0, 0, 0), (t, d, h), "bookshelf"), _Box((w - t, 0, 0), (w, d, h), "bookshelf"),
             _Box((0, d - t, 0), (w, d, h), "bookshelf")]
    shelves = max(2, int(h / 0.38))
    for i in range(shelves + 1):
        z = i * (h - t) / shelves
        boxes.append(_Box((t, 0, z), (w - t, d - t, z + t), "bookshelf"))
        if i < shelves and bool(torch.rand((), generator=g) < 0.7):  # a row of books
            x1 = t + _uniform(g, 0.3, 0.9) * (w - 2 * t)
            boxes.append(_Box((t, 0.04, z + t), (x1, d - t, z + t + _uniform(g, 0.18, 0.28)), "clutter", part=1 + i))
    return _Piece(w, d, tuple(boxes), against_wall=True)


def _counter(g: torch.Generator) -> _Piece:
    w, d, h = _uniform(g, 1.6, 3.0), 0.62, 0.88
    x0 = _uniform(g, 0.3, w - 0.9)
    x1 = x0 + 0.6
    boxes = [_Box((0, 0, 0), (w, d, 0.7), "counter"),  # body, and the worktop around the basin
             _Box((0, 0, 0.7), (x0, d, h), "counter"), _Box((x1, 0, 0.7), (w, d, h), "counter"),
             _Box((x0, 0, 0.7), (x1, 0.1, h), "counter"), _Box((x0, d - 0.1, 0.7), (x1, d, h), "counter"),
             _Box((x0, 0.1, 0.72), (x1, d - 0.1, h), "sink", part=1, open_top=True, solid=False),
             _Box((0, d - 0.35, 1.45), (w, d, 2.1), "cabinet", part=2)]  # wall cabinets above
    return _Piece(w, d, tuple(boxes), against_wall=True)


def _toilet(g: torch.Generator) -> _Piece:
    return _Piece(0.4, 0.7, (_Box((0.02, 0, 0), (0.38, 0.5, 0.4), "toilet"),
                             _Box((0, 0.5, 0), (0.4, 0.7, 0.8), "toilet")), against_wall=True)


def _bathroom_sink(g: torch.Generator) -> _Piece:
    w = _uniform(g, 0.5, 0.8)
    return _Piece(w, 0.5, (_Box((0.15, 0.2, 0), (w - 0.15, 0.45, 0.7), "sink"),
                           _Box((0, 0, 0.7), (w, 0.5, 0.88), "sink", open_top=True, solid=False)), against_wall=True)


def _bathtub(g: torch.Generator) -> _Piece:
    w = _uniform(g, 1.5, 1.8)
    boxes = (_Box((0, 0, 0), (w, 0.75, 0.55), "bathtub", open_top=True, solid=False),
             _Box((0.05, 0.05, 0.05), (w - 0.05, 0.7, 0.55), "bathtub", open_top=True, solid=False),
             _Box((0, -0.02, 0.6), (w, 0.0, 2.0), "shower curtain", part=1, solid=False))
    return _Piece(w, 0.75, boxes, against_wall=True)


def _lamp(g: torch.Generator) -> _Piece:
    return _Piece(0.4, 0.4, (_Box((0.17, 0.17, 0), (0.23, 0.23, 1.4), "lamp"),
                             _Box((0, 0, 1.4), (0.4, 0.4, 1.7), "lamp"),
                             _Box((0.05, 0.05, 0), (0.35, 0.35, 0.04), "lamp")), against_wall=False)


def _clutter(g: torch.Generator) -> _Piece:
    w, d, h = _uniform(g, 0.2, 0.6), _uniform(g, 0.2, 0.5), _uniform(g, 0.15, 0.7)
    return _Piece(w, d, (_Box((0, 0, 0), (w, d, h), "clutter"),), against_wall=False)


_BUILDERS = {
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
_WALL_ITEMS = {"picture": ((0.4, 1.2), (0.4, 0.9), (1.2, 1.6)), "board": ((1.5, 2.6), (0.9, 1.2), (0.85, 1.0)),
               "mirror": ((0.5, 0.9), (0.6, 0.9), (1.0, 1.3)), "television": ((0.9, 1.4), (0.55, 0.8), (1.0, 1.3))}


def _rotate_xy(x: float, y: float, quarter_turns: int) -> tuple[float, float]:
    return [(x, y), (-y, x), (-x, -y), (y, -x)][quarter_turns % 4]


def _place(piece: _Piece, quarter_turns: int, corner: tuple[float, float]) -> list[_Box]:
    """The piece's boxes turned by ``quarter_turns`` x 90 degrees, footprint's min corner at ``corner``."""
    corners = [_rotate_xy(x, y, quarter_turns) for x in (0.0, piece.width) for y in (0.0, piece.depth)]
    shift = (corner[0] - min(c[0] for c in corners), corner[1] - min(c[1] for c in corners))
    placed = []
    for box in piece.boxes:
        a = _rotate_xy(box.lo[0], box.lo[1], quarter_turns)
        b = _rotate_xy(box.hi[0], box.hi[1], quarter_turns)
        lo = (min(a[0], b[0]) + shift[0], min(a[1], b[1]) + shift[1], box.lo[2])
        hi = (max(a[0], b[0]) + shift[0], max(a[1], b[1]) + shift[1], box.hi[2])
        placed.append(_Box(lo, hi, box.kind, box.part, box.open_top, box.solid))
    return placed


# Walls: 0 at y = 0, 1 at x = W, 2 at y = D, 3 at x = 0. The turn that puts a piece's back
# (local +y) against wall s, and the wall's inward normal.
_BACK_TO_WALL_TURNS = (2, 3, 0, 1)
_WALL_INWARD = ((0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (1.0, 0.0))


@dataclass
class _Opening:
    wall: int
    start: float  # along the wall, from its start corner
    end: float
    bottom: float
    top: float
    kind: str  # "door" or "window"


@dataclass
class _Layout:
    width: float
    depth: float
    height: float
    openings: list[_Opening] = field(default_factory=list)
    boxes: list[tuple[_Box, int]] = field(default_factory=list)  # (box, object id)
    sheets: list[tuple[_Sheet, int]] = field(default_factory=list)
    footprints: list[tuple[float, float, float, float]] = field(default_factory=list)  # occupied x0, y0, x1, y1
    objects: int = 0

    def wall_length(self, wall: int) -> float:
        return self.width if wall % 2 == 0 else self.depth

    def wall_point(self, wall: int, t: float, offset: float = 0.0) -> tuple[float, float]:
        """Floor-plan point ``t`` along ``wall`` and ``offset`` into the room."""
        start = ((0.0, 0.0), (self.width, 0.0), (self.width, self.depth), (0.0, self.depth))[wall]
        direction = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[wall]
        inward = _WALL_INWARD[wall]
        return (start[0] + t * direction[0] + offset * inward[0], start[1] + t * direction[1] + offset * inward[1])

    def free(self, x0: float, y0: float, x1: float, y1: float, clearance: float = 0.05) -> bool:
        if x0 < -1e-9 or y0 < -1e-9 or x1 > self.width + 1e-9 or y1 > self.depth + 1e-9:
            return False
        return all(x1 + clearance <= a0 or a1 + clearance <= x0 or y1 + clearance <= b0 or b1 + clearance <= y0
                   for a0, b0, a1, b1 in self.footprints)

    def add_object(self, boxes: Sequence[_Box]) -> None:
        ids = {}
        for box in boxes:
            if box.part not in ids:
                ids[box.part] = self.objects
                self.objects += 1
            self.boxes.append((box, ids[box.part]))

    def wall_span_free(self, wall: int, start: float, end: float, bottom: float, top: float) -> bool:
        return all(o.wall != wall or end + 0.1 <= o.start or o.end + 0.1 <= start or top <= o.bottom or o.top <= bottom
                   for o in self.openings)


def _add_openings(layout: _Layout, g: torch.Generator, room_type: str) -> None:
    doors = 1 if room_type not in ("hallway", "conferenceRoom", "lounge") else 2
    windows = 0 if room_type in ("hallway", "storage", "WC", "copyRoom") else _randint(g, 1, 3)
    for kind, count, width, bottom, top in (("door", doors, (0.8, 1.0), (0.0, 0.0), (2.0, 2.1)),
                                            ("window", windows, (0.8, 1.8), (0.8, 1.0), (1.9, 2.2))):
        for _ in range(count):
            for _attempt in range(20):
                wall = _randint(g, 0, 3)
                w = _uniform(g, *width)
                length = layout.wall_length(wall)
                if length < w + 0.6:
                    continue
                start = _uniform(g, 0.3, length - w - 0.3)
                z0, z1 = _uniform(g, *bottom), min(_uniform(g, *top), layout.height - 0.15)
                if layout.wall_span_free(wall, start, start + w, z0, z1):
                    layout.openings.append(_Opening(wall, start, start + w, z0, z1, kind))
                    if kind == "door":  # keep the way through the door clear of furniture
                        a = layout.wall_point(wall, start)
                        b = layout.wall_point(wall, start + w, 1.0)
                        layout.footprints.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
                    break


def _place_piece(layout: _Layout, g: torch.Generator, piece: _Piece) -> list[_Box] | None:
    """Put ``piece`` against a random wall (or anywhere when it stands free); None when it does not fit."""
    for _attempt in range(30):
        if piece.against_wall:
            wall = _randint(g, 0, 3)
            turns = _BACK_TO_WALL_TURNS[wall]
            length = layout.wall_length(wall)
            if length < piece.width + 0.1:
                continue
            t = _uniform(g, 0.05, length - piece.width - 0.05)
            a = layout.wall_point(wall, t)
            b = layout.wall_point(wall, t + piece.width, piece.depth)
            corner = (min(a[0], b[0]), min(a[1], b[1]))
        else:
            turns = _randint(g, 0, 3)
            span = (piece.width, piece.depth) if turns % 2 == 0 else (piece.depth, piece.width)
            if span[0] > layout.width - 0.4 or span[1] > layout.depth - 0.4:
                continue
            corner = (_uniform(g, 0.2, layout.width - span[0] - 0.2), _uniform(g, 0.2, layout.depth - span[1] - 0.2))
        span = (piece.width, piece.depth) if turns % 2 == 0 else (piece.depth, piece.width)
        if piece.against_wall:
            tall = max(box.hi[2] for box in piece.boxes)
            blocked = any(o.wall == wall and o.bottom < tall and not (t + piece.width <= o.start or o.end <= t)
                          for o in layout.openings)
            if blocked:
                continue
        if layout.free(corner[0], corner[1], corner[0] + span[0], corner[1] + span[1]):
            layout.footprints.append((corner[0], corner[1], corner[0] + span[0], corner[1] + span[1]))
            return _place(piece, turns, corner)
    return None


def _furnish(layout: _Layout, g: torch.Generator, flavor: RoomFlavor, room_type: str) -> None:
    for kind, (low, high) in flavor.room_types[room_type].items():
        for _ in range(_randint(g, low, high)):
            if kind in _WALL_ITEMS:
                _hang(layout, g, kind)
            elif kind == "curtain":
                _curtain(layout, g)
            else:
                builder = _BUILDERS["conference_table" if (kind, room_type) == ("table", "conferenceRoom") else kind]
                boxes = _place_piece(layout, g, builder(g))
                if boxes is not None:
                    layout.add_object(boxes)


def _hang(layout: _Layout, g: torch.Generator, kind: str) -> None:
    width, height, bottom = _WALL_ITEMS[kind]
    for _attempt in range(20):
        wall = _randint(g, 0, 3)
        w, h, z0 = _uniform(g, *width), _uniform(g, *height), _uniform(g, *bottom)
        length = layout.wall_length(wall)
        if length < w + 0.4 or z0 + h > layout.height - 0.1:
            continue
        t = _uniform(g, 0.2, length - w - 0.2)
        if not layout.wall_span_free(wall, t, t + w, z0, z0 + h):
            continue
        thickness = 0.06 if kind == "television" else 0.02
        a, b = layout.wall_point(wall, t), layout.wall_point(wall, t + w, thickness)
        layout.add_object([_Box((min(a[0], b[0]), min(a[1], b[1]), z0), (max(a[0], b[0]), max(a[1], b[1]), z0 + h), kind)])
        layout.openings.append(_Opening(wall, t, t + w, z0, z0 + h, kind))  # nothing else hangs there
        return


def _curtain(layout: _Layout, g: torch.Generator) -> None:
    windows = [o for o in layout.openings if o.kind == "window"]
    if not windows:
        return
    window = windows[_randint(g, 0, len(windows) - 1)]
    start, end = window.start - 0.15, window.end + 0.15
    origin = layout.wall_point(window.wall, max(start, 0.0), 0.08)
    direction = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[window.wall]
    width = min(end, layout.wall_length(window.wall)) - max(start, 0.0)
    sheet = _Sheet((origin[0], origin[1], 0.05), (direction[0], direction[1], 0.0), width,
                   min(window.top + 0.3, layout.height - 0.05) - 0.05, 0.05, "curtain")
    layout.sheets.append((sheet, layout.objects))
    layout.objects += 1


def _structure(layout: _Layout, g: torch.Generator, flavor: RoomFlavor) -> None:
    """S3DIS-style beams across the ceiling and columns against the walls."""
    for _ in range(_randint(g, *flavor.beams)):
        y0 = _uniform(g, 0.5, layout.depth - 0.9)
        depth = _uniform(g, 0.3, 0.5)
        layout.add_object([_Box((0.0, y0, layout.height - _uniform(g, 0.3, 0.6)), (layout.width, y0 + depth, layout.height), "beam")])
    for _ in range(_randint(g, *flavor.columns)):
        side = _uniform(g, 0.3, 0.6)
        piece = _Piece(side, side, (_Box((0, 0, 0), (side, side, layout.height), "column"),), against_wall=True)
        boxes = _place_piece(layout, g, piece)
        if boxes is not None:
            layout.add_object(boxes)


# --------------------------------------------------------------------------------------------
# Sampling surfaces


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


def _wall_surfaces(layout: _Layout, surfaces: _Surfaces, g: torch.Generator, density: float, wall_object: int) -> None:
    """Walls with their openings cut out, door leaves, window glass and sills."""
    for wall in range(4):
        length = layout.wall_length(wall)
        start = torch.tensor([*layout.wall_point(wall, 0.0), 0.0], dtype=torch.float64)
        end = torch.tensor([*layout.wall_point(wall, length), 0.0], dtype=torch.float64)
        along = (end - start) / length
        inward = torch.tensor([*_WALL_INWARD[wall], 0.0], dtype=torch.float64)
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


def _sheet_surface(sheet: _Sheet, count: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
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


def _sample(layout: _Layout, g: torch.Generator, density: float) -> _Surfaces:
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


def _visible(points: Tensor, normals: Tensor, owner: Tensor, layout: _Layout) -> Tensor:
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
    inward = torch.tensor(_WALL_INWARD, dtype=torch.float64)  # (4, 2)
    faces_wall = (normals[:, None, :2] * inward).sum(-1) < -0.9  # normal points into the wall
    visible &= ~((near_wall & faces_wall).any(1) & (owner >= 0))
    visible &= ~((normals[:, 2] < -0.7) & (points[:, 2] < 1.5))
    return visible


# --------------------------------------------------------------------------------------------
# Colour and capture effects


def _smooth_field(points: Tensor, g: torch.Generator, waves: int = 3) -> Tensor:
    """A smooth random field in [0, 1] over space: a sum of random plane waves of ~2-5 m."""
    value = torch.zeros(len(points), dtype=torch.float64)
    for _ in range(waves):
        direction = torch.randn(3, generator=g, dtype=torch.float64)
        direction = direction / direction.norm() * (2 * math.pi / _uniform(g, 2.0, 5.0))
        value += torch.sin(points @ direction + _uniform(g, 0, 2 * math.pi))
    return 0.5 + 0.5 * value / waves


def _colors(kinds: Sequence[str], objects: Sequence[int], counts: Sequence[int], points: Tensor, normals: Tensor,
            flavor: RoomFlavor, g: torch.Generator) -> Tensor:
    base = []
    per_object: dict[int, Tensor] = {}
    for kind, obj, count in zip(kinds, objects, counts):
        if obj not in per_object:
            palette = _PALETTE["window" if kind == "glass" else kind]
            rgb = torch.tensor(palette[_randint(g, 0, len(palette) - 1)], dtype=torch.float64)
            per_object[obj] = (rgb * _uniform(g, 0.85, 1.15)).clamp(0, 255)
        base.append(per_object[obj].expand(count, 3))
    rgb = torch.cat(base) if base else torch.zeros(0, 3, dtype=torch.float64)
    gray = rgb.mean(1, keepdim=True)
    rgb = gray + (rgb - gray) * flavor.saturation
    rgb = rgb * _uniform(g, *flavor.brightness) * torch.tensor(flavor.tint, dtype=torch.float64)
    light = torch.tensor([0.3, 0.2, 0.93], dtype=torch.float64)
    shade = 1 - flavor.shading * (1 - (normals @ light).clamp(min=0))
    falloff = 1 - flavor.lighting * _smooth_field(points, g)
    rgb = rgb * (shade * falloff)[:, None]
    if flavor.color_noise > 0:
        rgb = rgb + flavor.color_noise * torch.randn(rgb.shape, generator=g, dtype=torch.float64)
    return rgb.clamp(0, 255).round()


def _capture(points: Tensor, kinds: Tensor, layout: _Layout, flavor: RoomFlavor,
             glass: int, ceiling: int, g: torch.Generator) -> Tensor:
    """Which points a sensor of this flavor records (holes, uneven density, glass, ceiling)."""
    keep = torch.ones(len(points), dtype=torch.bool)
    if flavor.density_variation > 0:
        keep &= torch.rand(len(points), generator=g, dtype=torch.float64) >= flavor.density_variation * _smooth_field(points, g)
    area = 2 * (layout.width * layout.depth + layout.height * (layout.width + layout.depth))
    holes = int(torch.poisson(torch.tensor(flavor.holes_per_m2 * area, dtype=torch.float64), generator=g))
    for _ in range(holes):
        center = points[_randint(g, 0, len(points) - 1)] if len(points) else torch.zeros(3, dtype=torch.float64)
        keep &= (points - center).norm(dim=1) > _uniform(g, 0.1, 0.45)
    if flavor.glass_keep < 1:
        keep &= (kinds != glass) | (torch.rand(len(points), generator=g, dtype=torch.float64) < flavor.glass_keep)
    if flavor.ceiling_band is not None:
        x, y = points[:, 0], points[:, 1]
        to_wall = torch.stack([x, y, layout.width - x, layout.depth - y], dim=1).amin(1)
        keep &= (kinds != ceiling) | (to_wall < flavor.ceiling_band)
    return keep


# --------------------------------------------------------------------------------------------
# Rooms


@dataclass(frozen=True)
class SyntheticRoom:
    """One generated room: ``coord`` (N, 3) float32 metres, ``color`` (N, 3) uint8, ``normal``
    (N, 3) float32, ``segment`` (N,) int64 in the flavor's class order (-1 ignore), ``instance``
    (N,) int64 object ids, and its ``room_type``."""

    coord: np.ndarray
    color: np.ndarray
    normal: np.ndarray
    segment: np.ndarray
    instance: np.ndarray
    room_type: str


def _flavor(flavor: str | RoomFlavor) -> RoomFlavor:
    if isinstance(flavor, RoomFlavor):
        return flavor
    if flavor not in FLAVORS:
        raise ValueError(f"unknown room flavor {flavor!r}; expected one of {sorted(FLAVORS)}")
    return FLAVORS[flavor]


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
    flavor = _flavor(flavor)
    if not density > 0:
        raise ValueError(f"synthesize_room: density must be positive, got {density}")
    types = list(flavor.room_types)
    g = torch.Generator().manual_seed(seed)
    chosen = types[_randint(g, 0, len(types) - 1)]
    if room_type is not None:
        if room_type not in flavor.room_types:
            raise ValueError(f"synthesize_room: {flavor.name} has no room type {room_type!r}; expected one of {types}")
        chosen = room_type
    (w0, w1), (d0, d1), (h0, h1) = flavor.size
    if chosen == "hallway":
        layout = _Layout(_uniform(g, 5.0, 10.0), _uniform(g, 1.6, 2.4), _uniform(g, h0, h1))
    elif chosen in ("WC", "bathroom", "pantry", "copyRoom", "storage"):
        layout = _Layout(_uniform(g, 2.0, 3.5), _uniform(g, 1.8, 3.0), _uniform(g, h0, h1))
    else:
        layout = _Layout(_uniform(g, w0, w1), _uniform(g, d0, d1), _uniform(g, h0, h1))
    _add_openings(layout, g, chosen)
    _structure(layout, g, flavor)
    _furnish(layout, g, flavor, chosen)

    surfaces = _sample(layout, g, flavor.points_per_m2 * density)
    counts = [len(p) for p in surfaces.points]
    points, normals = torch.cat(surfaces.points), torch.cat(surfaces.normals)
    kind_names = sorted(set(surfaces.kinds))
    kinds = torch.repeat_interleave(torch.tensor([kind_names.index(k) for k in surfaces.kinds]), torch.tensor(counts))
    objects = torch.repeat_interleave(torch.tensor(surfaces.objects), torch.tensor(counts))
    owners = torch.repeat_interleave(torch.tensor(surfaces.owners), torch.tensor(counts))
    colors = _colors(surfaces.kinds, surfaces.objects, counts, points, normals, flavor, g)
    glass = kind_names.index("glass") if "glass" in kind_names else -1
    keep = _visible(points, normals, owners, layout) & _capture(
        points, kinds, layout, flavor, glass, kind_names.index("ceiling"), g)
    points, normals, colors, kinds, objects = points[keep], normals[keep], colors[keep], kinds[keep], objects[keep]

    if flavor.noise > 0:  # range noise along the normal, a little across it
        points = points + normals * (flavor.noise * torch.randn(len(points), 1, generator=g, dtype=torch.float64))
        points = points + (flavor.noise / 3) * torch.randn(points.shape, generator=g, dtype=torch.float64)
    if flavor.normal_noise > 0:
        normals = normals + flavor.normal_noise * torch.randn(normals.shape, generator=g, dtype=torch.float64)
        normals = normals / normals.norm(dim=1, keepdim=True).clamp(min=1e-12)
    if flavor.any_yaw:  # a scan's frame: any heading, coordinates from the scan's corner
        angle = _uniform(g, 0, 2 * math.pi)
        c, s = math.cos(angle), math.sin(angle)
        rotation = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
        points, normals = points @ rotation.T, normals @ rotation.T
        points = points - points.amin(0) * torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    points = points + torch.tensor(origin, dtype=torch.float64)

    label_of_kind = torch.tensor([flavor.label_of("window" if k == "glass" else k) for k in kind_names])
    order = torch.randperm(len(points), generator=g)  # scans do not list points surface by surface
    return SyntheticRoom(
        coord=points[order].numpy().astype(np.float32), color=colors[order].numpy().astype(np.uint8),
        normal=normals[order].numpy().astype(np.float32), segment=label_of_kind[kinds[order]].numpy(),
        instance=objects[order].numpy(), room_type=chosen)


# --------------------------------------------------------------------------------------------
# Writing datasets


def _split_counts(scenes: int, fractions: Sequence[float]) -> list[int]:
    """Scenes per split (largest remainder), at least one in the first two splits when there are two scenes."""
    raw = [scenes * f for f in fractions]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[:scenes - sum(counts)]:
        counts[i] += 1
    if scenes >= 2 and counts[1] == 0:
        counts[1], counts[0] = 1, counts[0] - 1
    return counts


def _make_folders(out: Path, splits) -> None:
    """Every split folder of the dataset, empty or not, as the real datasets ship them."""
    for split in splits:
        (out / split).mkdir(parents=True, exist_ok=True)


def _save(folder: Path, arrays: Mapping[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)


def _write_scannet(out: Path, scenes: int, seed: int, density: float) -> list[Path]:
    # ScanNet v2: 1201 train / 312 val / 100 test scans; test scans come without labels.
    written = []
    splits = ("train", "val", "test")
    _make_folders(out, splits)
    index = 0
    for split, count in zip(splits, _split_counts(scenes, (0.745, 0.193, 0.062))):
        for _ in range(count):
            room = synthesize_room(SCANNET, seed=_scene_seed(seed, index), density=density)
            arrays = {"coord": room.coord, "color": room.color, "normal": room.normal}
            if split != "test":  # as Pointcept's preprocess_scannet.py writes them
                arrays["segment20"] = room.segment.astype(np.int16)
                arrays["instance"] = room.instance.astype(np.int64)
            folder = out / split / f"scene{index:04d}_00"
            _save(folder, arrays)
            written.append(folder)
            index += 1
    return written


def _write_s3dis(out: Path, scenes: int, seed: int, density: float) -> list[Path]:
    # Rooms go round the areas so that Area_5 (the held-out area) has one as soon as there are two.
    written = []
    _make_folders(out, [f"Area_{area}" for area in range(1, 7)])
    area_cycle = (1, 5, 2, 3, 4, 6)
    per_area_type: dict[tuple[int, str], int] = {}
    for index in range(scenes):
        area = area_cycle[index % len(area_cycle)]
        # Rooms of an area lie side by side in the area's frame, as in S3DIS.
        slot = index // len(area_cycle)
        room = synthesize_room(S3DIS, seed=_scene_seed(seed, index), density=density, origin=(12.0 * slot, 0.0, 0.0))
        number = per_area_type.get((area, room.room_type), 0) + 1
        per_area_type[(area, room.room_type)] = number
        folder = out / f"Area_{area}" / f"{room.room_type}_{number}"
        _save(folder, {"coord": room.coord, "color": room.color, "normal": room.normal,
                       "segment": room.segment.astype(np.int16)[:, None], "instance": room.instance.astype(np.int16)[:, None]})
        written.append(folder)
    return written


def _write_structured3d(out: Path, scenes: int, seed: int, density: float) -> list[Path]:
    # Structured3D: scenes 0-2999 train, 3000-3249 val, 3250-3499 test; each scene is a house of
    # rooms. ``scenes`` counts rooms (the samples), grouped into houses of one to three rooms.
    written = []
    first_scene_id = {"train": 0, "val": 3000, "test": 3250}
    _make_folders(out, first_scene_id)
    index = 0
    for split, count in zip(("train", "val", "test"), _split_counts(scenes, (0.857, 0.0715, 0.0715))):
        scene_id, room_in_scene, rooms_in_scene = first_scene_id[split], 0, 0
        for _ in range(count):
            if room_in_scene == rooms_in_scene:  # start the next house
                if rooms_in_scene:
                    scene_id += 1
                g = torch.Generator().manual_seed(_scene_seed(seed, index, 1))
                rooms_in_scene, room_in_scene = _randint(g, 1, 3), 0
            room = synthesize_room(STRUCTURED3D, seed=_scene_seed(seed, index), density=density,
                                   origin=(8.0 * room_in_scene, 0.0, 0.0))
            folder = out / split / f"scene_{scene_id:05d}" / f"room_{room_in_scene}"
            _save(folder, {"coord": room.coord, "color": room.color, "normal": room.normal,
                           "segment": room.segment.astype(np.int16)[:, None]})
            written.append(folder)
            room_in_scene += 1
            index += 1
    return written


def _scene_seed(seed: int, *keys: int) -> int:
    """A seed for the item ``keys`` of a dataset generated from ``seed``."""
    return int(np.random.SeedSequence((seed, *keys)).generate_state(1)[0])


_WRITERS = {"scannet": _write_scannet, "s3dis": _write_s3dis, "structured3d": _write_structured3d}


def write_synthetic_rooms(out: str | PathLike, flavor: str, scenes: int, *, seed: int = 0,
                          density: float = 1.0) -> list[Path]:
    """Write ``scenes`` synthetic rooms of ``flavor`` under ``out`` in the dataset's layout (split
    folders as the real dataset has them) and return the scene folders written.

    The result loads with :class:`ppt.data.ScanNet`, :class:`ppt.data.S3DIS` or
    :class:`ppt.data.Structured3D`. Deterministic in ``seed``; ``density`` scales the flavor's
    points per square metre.
    """
    _flavor(flavor)
    if scenes < 1:
        raise ValueError(f"write_synthetic_rooms: scenes must be >= 1, got {scenes}")
    out = Path(out)
    return _WRITERS[flavor](out, scenes, seed, density)
