"""Procedural objects of ShapeNetPart's 16 categories whose parts are geometric components, written
in the official layout (:mod:`ppt.data.objects.shapenet_part`): the embedded data of the part
segmentation recipes (``ppt data synth-parts``).

Each category is assembled from the surface primitives of :mod:`ppt.data.objects.synthetic`
(boxes, cylinders, ellipsoids, torus arcs); every primitive belongs to one of the category's
parts, in the category's part-id order below (ppt's names; the benchmark ships ids only, and
these are not claimed to match its annotation order):

==========  =============================================  ==========  ==============================
Airplane    fuselage, wings, tail, engines                 Laptop      base, screen
Bag         body, handle                                   Motorbike   tank, seat, wheels, handlebar,
Cap         crown, peak                                                headlight, frame
Car         body, roof, wheels, bumpers                    Mug         cup, handle
Chair       seat, back, legs, arms (optional)              Pistol      barrel, grip, trigger
Earphone    cups, headband, cord (optional)                Rocket      body, fins, nose
Guitar      body, neck, head                               Skateboard  deck, wheels, trucks
Knife       blade, handle                                  Table       top, legs, stretchers (optional)
Lamp        base, pole, shade, bulb
==========  =============================================  ==========  ==============================

Counts, proportions and optional parts vary per object, so some objects lack a part (as real
chairs lack arms). Objects are upright (``y`` up, ``z`` forward, as ShapeNet), in metres;
normals are the primitives' exact outward normals. Every object has ``num_points`` to
``1.25 * num_points`` points (real files have about 2,000 to 3,000), written as
``x y z nx ny nz part`` rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from os import PathLike
from pathlib import Path

import numpy as np

from ppt.data.objects.shapenet_part import SHAPENETPART_CATEGORIES, SHAPENETPART_PARTS, SHAPENETPART_SYNSETS
from ppt.data.objects.synthetic import _box, _Box, _Cylinder, _Ellipsoid, _Part, _sample_parts, _TorusArc

__all__ = ["synthesize_part_object", "write_synthetic_shapenet_part"]

_Labelled = list[tuple[_Part, int]]  # primitives with the category-local part index each belongs to
_TORUS_ORDER = {"z": (0, 1, 2), "y": (0, 2, 1), "x": (2, 0, 1)}
_AXIS_COLUMN = {"x": 0, "y": 1, "z": 2}


def _normals(part: _Part, points: np.ndarray) -> np.ndarray:
    """Outward unit normals of ``points`` drawn on ``part``'s surface."""
    if isinstance(part, _Box):
        lo, hi = np.array(part.lo), np.array(part.hi)
        gaps = np.concatenate([np.abs(points - lo), np.abs(points - hi)], axis=1)  # faces -x -y -z +x +y +z
        face = gaps.argmin(axis=1)
        normals = np.zeros_like(points)
        normals[np.arange(len(points)), face % 3] = np.where(face < 3, -1.0, 1.0)
        return normals
    if isinstance(part, _Cylinder):
        axis = _AXIS_COLUMN[part.axis]
        local = points - np.array(part.base)
        height = local[:, axis]
        radial = local.copy()
        radial[:, axis] = 0.0
        on_side = np.abs(np.linalg.norm(radial, axis=1) - part.radius) < 1e-9 * max(part.radius, 1.0)
        normals = np.zeros_like(points)
        normals[:, axis] = np.where(height < part.length / 2, -1.0, 1.0)
        normals[on_side] = radial[on_side] / part.radius
        return normals
    if isinstance(part, _Ellipsoid):
        gradient = (points - np.array(part.center)) / np.square(part.radii)
        return gradient / np.linalg.norm(gradient, axis=1, keepdims=True)
    order = _TORUS_ORDER[part.axis]
    local = (points - np.array(part.center))[:, np.argsort(order)]
    angle = np.arctan2(local[:, 1], local[:, 0])
    ring = np.stack([part.radius * np.cos(angle), part.radius * np.sin(angle), np.zeros_like(angle)], axis=1)
    normals = (local - ring)[:, order]
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# The 16 categories: each builder returns one instance's primitives with their part index.

def _airplane(rng) -> _Labelled:
    length, radius, span = rng.uniform(2.5, 4.0), rng.uniform(0.15, 0.25), rng.uniform(2.5, 4.0)
    wing_z, chord = rng.uniform(-0.2, 0.3), rng.uniform(0.4, 0.7)
    parts: _Labelled = [(_Ellipsoid((0, 0, 0), (radius, radius, length / 2)), 0),
                        (_box((0, 0, wing_z), (span, 0.04, chord)), 1),
                        (_box((0, 0.05, -length * 0.45), (span * 0.35, 0.03, chord * 0.5)), 2),
                        (_box((0, radius + 0.3, -length * 0.45), (0.03, 0.6, chord * 0.5)), 2)]
    for x in ([-1, 1] if rng.random() < 0.6 else [-1.4, -0.7, 0.7, 1.4]):
        offset = x * span * 0.22
        parts.append((_Cylinder((offset, -0.15, wing_z + chord * 0.6), 0.1, 0.6, "z"), 3))
    return parts


def _bag(rng) -> _Labelled:
    w, h, d = rng.uniform(0.3, 0.5), rng.uniform(0.25, 0.4), rng.uniform(0.1, 0.2)
    body = _Ellipsoid((0, h / 2, 0), (w / 2, h / 2, d / 2)) if rng.random() < 0.4 else _box((0, h / 2, 0), (w, h, d))
    return [(body, 0)] + [(_TorusArc((0, h, z), rng.uniform(0.08, 0.14), 0.012, "z", 0.0, math.pi), 1)
                          for z in ([0.0] if rng.random() < 0.6 else [-d / 4, d / 4])]


def _cap(rng) -> _Labelled:
    r, h = rng.uniform(0.09, 0.11), rng.uniform(0.07, 0.1)
    return [(_Ellipsoid((0, 0, 0), (r, h, r * 1.1)), 0),
            (_box((0, -h * 0.1, r * 1.1 + 0.04), (r * 1.6, 0.01, rng.uniform(0.06, 0.09))), 1)]


def _car(rng) -> _Labelled:
    w, h, l = rng.uniform(1.6, 1.9), rng.uniform(0.5, 0.7), rng.uniform(3.8, 4.8)
    wheel = rng.uniform(0.3, 0.36)
    parts: _Labelled = [(_box((0, wheel + h / 2, 0), (w, h, l)), 0),
                        (_box((0, wheel + h + 0.25, -l * 0.05), (w * 0.85, 0.5, l * rng.uniform(0.4, 0.55))), 1)]
    for x in (-w / 2 - 0.05, w / 2 - 0.15):
        for z in (-l * 0.32, l * 0.32):
            parts.append((_Cylinder((x, wheel, z), wheel, 0.2, "x"), 2))
    for z in (-l / 2 - 0.05, l / 2 + 0.05):
        parts.append((_box((0, wheel + 0.1, z), (w, 0.15, 0.1)), 3))
    return parts


def _legs(width: float, depth: float, height: float, inset: float, thickness: float, part: int) -> _Labelled:
    return [(_box((sx * (width / 2 - inset), height / 2, sz * (depth / 2 - inset)), (thickness, height, thickness),
                  faces=(0, 1, 2, 4, 5)), part) for sx in (-1, 1) for sz in (-1, 1)]


def _chair(rng) -> _Labelled:
    w, d, seat, back = rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.5), rng.uniform(0.35, 0.6)
    parts: _Labelled = [(_box((0, seat, 0), (w, 0.05, d)), 0)]
    if rng.random() < 0.6:
        parts.append((_box((0, seat + back / 2, -d / 2 + 0.02), (w, back, 0.04)), 1))
    else:
        slats = int(rng.integers(3, 6))
        parts += [(_box((-w / 2 + (i + 0.5) * w / slats, seat + back / 2, -d / 2 + 0.02), (0.03, back, 0.03)), 1)
                  for i in range(slats)]
        parts.append((_box((0, seat + back, -d / 2 + 0.02), (w, 0.05, 0.04)), 1))
    parts += _legs(w, d, seat - 0.025, 0.03, rng.uniform(0.025, 0.045), 2)
    if rng.random() < 0.5:
        for sx in (-1, 1):
            parts += [(_box((sx * w / 2, seat + 0.2, 0), (0.04, 0.04, d * 0.9)), 3),
                      (_box((sx * w / 2, seat + 0.1, d * 0.35), (0.03, 0.2, 0.03)), 3)]
    return parts


def _earphone(rng) -> _Labelled:
    span, cup = rng.uniform(0.15, 0.2), rng.uniform(0.04, 0.055)
    parts: _Labelled = [(_Cylinder((sx * span / 2 - (0.03 if sx > 0 else 0), 0, 0), cup, 0.03, "x"), 0)
                        for sx in (-1, 1)]
    parts.append((_TorusArc((0, 0.02, 0), span / 2, 0.01, "z", 0.0, math.pi), 1))
    if rng.random() < 0.5:
        parts.append((_Cylinder((-span / 2, -0.3, 0), 0.004, 0.3 - cup, "y"), 2))
    return parts


def _guitar(rng) -> _Labelled:
    body, neck = rng.uniform(0.3, 0.4), rng.uniform(0.45, 0.6)
    return [(_Ellipsoid((0, 0, 0), (body / 2, body * 0.6, 0.05)), 0),
            (_Ellipsoid((0, body * 0.55, 0), (body * 0.4, body * 0.4, 0.05)), 0),
            (_box((0, body * 0.7 + neck / 2, 0), (0.05, neck, 0.03)), 1),
            (_box((0, body * 0.7 + neck + 0.08, 0), (0.08, 0.16, 0.03)), 2)]


def _knife(rng) -> _Labelled:
    blade, handle = rng.uniform(0.15, 0.3), rng.uniform(0.1, 0.13)
    grip = _Cylinder((0, 0, -handle), 0.012, handle, "z") if rng.random() < 0.5 else \
        _box((0, 0, -handle / 2), (0.02, 0.025, handle))
    return [(_box((0, 0.005, blade / 2), (0.003, rng.uniform(0.025, 0.045), blade)), 0), (grip, 1)]


def _lamp(rng) -> _Labelled:
    height, base = rng.uniform(0.4, 0.8), rng.uniform(0.08, 0.14)
    shade = rng.uniform(0.1, 0.2)
    parts: _Labelled = [(_Cylinder((0, 0, 0), base, 0.03, "y"), 0),
                        (_Cylinder((0, 0.03, 0), 0.01, height, "y", caps=(False, False)), 1)]
    if rng.random() < 0.5:
        parts.append((_Cylinder((0, height - shade * 0.3, 0), shade, shade, "y", caps=(False, False)), 2))
    else:
        parts.append((_Ellipsoid((0, height + shade * 0.4, 0), (shade, shade * 0.6, shade), lower_half=True), 2))
    parts.append((_Ellipsoid((0, height + 0.03, 0), (0.03, 0.04, 0.03)), 3))
    return parts


def _laptop(rng) -> _Labelled:
    w, d = rng.uniform(0.3, 0.4), rng.uniform(0.2, 0.28)
    return [(_box((0, 0.01, 0), (w, 0.02, d)), 0),
            (_box((0, 0.02 + d * 0.45, -d / 2), (w, d * rng.uniform(0.85, 1.0), 0.01)), 1)]


def _motorbike(rng) -> _Labelled:
    length, wheel = rng.uniform(1.8, 2.2), rng.uniform(0.28, 0.34)
    parts: _Labelled = [(_Ellipsoid((0, wheel * 2.4, length * 0.1), (0.15, 0.12, 0.25)), 0),
                        (_box((0, wheel * 2.3, -length * 0.15), (0.25, 0.06, 0.45)), 1)]
    for z in (-length / 2 + wheel, length / 2 - wheel):
        parts.append((_TorusArc((0, wheel, z), wheel * 0.8, wheel * 0.2, "x"), 2))
    parts.append((_Cylinder((-0.35, wheel * 2.9, length * 0.35), 0.015, 0.7, "x"), 3))
    parts.append((_Ellipsoid((0, wheel * 2.6, length * 0.42), (0.08, 0.08, 0.05)), 4))
    parts.append((_box((0, wheel * 1.6, 0), (0.2, wheel * 0.9, length * 0.55)), 5))
    return parts


def _mug(rng) -> _Labelled:
    r, h = rng.uniform(0.04, 0.06), rng.uniform(0.08, 0.12)
    return [(_Cylinder((0, 0, 0), r, h, "y", caps=(True, False)), 0),
            (_TorusArc((r, h / 2, 0), h * 0.3, 0.008, "z", -math.pi / 2, math.pi / 2), 1)]


def _pistol(rng) -> _Labelled:
    barrel, grip = rng.uniform(0.15, 0.22), rng.uniform(0.1, 0.14)
    return [(_box((0, 0.0, barrel / 2 - 0.03), (0.03, 0.035, barrel)), 0),
            (_box((0, -grip / 2, -0.02), (0.028, grip, 0.035)), 1),
            (_TorusArc((0, -0.025, 0.025), 0.015, 0.003, "x", math.pi, 2 * math.pi), 2)]


def _rocket(rng) -> _Labelled:
    height, radius = rng.uniform(1.0, 1.6), rng.uniform(0.08, 0.13)
    fins = int(rng.integers(3, 5))
    parts: _Labelled = [(_Cylinder((0, 0, 0), radius, height, "y", caps=(True, False)), 0)]
    for i in range(fins):
        angle = 2 * math.pi * i / fins
        x, z = math.cos(angle) * (radius + 0.08), math.sin(angle) * (radius + 0.08)
        size = (0.16 if abs(math.cos(angle)) > 0.5 else 0.01, 0.3, 0.01 if abs(math.cos(angle)) > 0.5 else 0.16)
        parts.append((_box((x, 0.15, z), size), 1))
    parts.append((_Ellipsoid((0, height, 0), (radius, radius * rng.uniform(2.0, 3.0), radius)), 2))
    return parts


def _skateboard(rng) -> _Labelled:
    w, l, wheel = rng.uniform(0.18, 0.24), rng.uniform(0.7, 0.85), rng.uniform(0.025, 0.03)
    parts: _Labelled = [(_box((0, 2 * wheel + 0.04, 0), (w, 0.015, l)), 0)]
    for z in (-l * 0.35, l * 0.35):
        parts += [(_Cylinder((sx * w * 0.45 - (0.03 if sx > 0 else 0), wheel, z), wheel, 0.03, "x"), 1)
                  for sx in (-1, 1)]
        parts.append((_box((0, 2 * wheel + 0.01, z), (w * 0.7, 0.03, 0.04)), 2))
    return parts


def _table(rng) -> _Labelled:
    w, d, h = rng.uniform(0.8, 1.6), rng.uniform(0.5, 0.9), rng.uniform(0.65, 0.78)
    if rng.random() < 0.7:
        parts: _Labelled = [(_box((0, h - 0.02, 0), (w, 0.04, d)), 0)]
        parts += _legs(w, d, h - 0.04, 0.05, rng.uniform(0.04, 0.07), 1)
        if rng.random() < 0.6:
            parts += [(_box((0, h * 0.25, sz * (d / 2 - 0.05)), (w - 0.1, 0.04, 0.03)), 2) for sz in (-1, 1)]
        return parts
    radius = min(w, d) / 2
    return [(_Cylinder((0, h - 0.04, 0), radius, 0.04, "y"), 0),
            (_Cylinder((0, 0.04, 0), 0.04, h - 0.08, "y", caps=(False, False)), 1),
            (_Cylinder((0, 0, 0), radius * 0.5, 0.04, "y"), 2)]


_BUILDERS: tuple[Callable[[np.random.Generator], _Labelled], ...] = (
    _airplane, _bag, _cap, _car, _chair, _earphone, _guitar, _knife, _lamp, _laptop, _motorbike, _mug, _pistol,
    _rocket, _skateboard, _table)


def synthesize_part_object(category: int, rng: np.random.Generator, num_points: int) -> np.ndarray:
    """One object of ``category`` (an index of :data:`~ppt.data.SHAPENETPART_CATEGORIES`) as a
    ``(num_points, 7)`` float64 array of rows ``x y z nx ny nz part`` (global part ids)."""
    if not 0 <= category < len(_BUILDERS):
        raise ValueError(f"category must lie in [0, {len(_BUILDERS)}), got {category}")
    labelled = _BUILDERS[category](rng)
    primitives = [primitive for primitive, _ in labelled]
    points, primitive_of = _sample_parts(primitives, num_points, rng)
    normals = np.zeros_like(points)
    for index, primitive in enumerate(primitives):
        chosen = primitive_of == index
        if chosen.any():
            normals[chosen] = _normals(primitive, points[chosen])
    first = SHAPENETPART_PARTS[SHAPENETPART_CATEGORIES[category]][0]
    parts = first + np.array([part for _, part in labelled])[primitive_of]
    return np.concatenate([points, normals, parts[:, None].astype(np.float64)], axis=1)


def write_synthetic_shapenet_part(out: str | PathLike, *, seed: int = 0, train_per_class: int = 32,
                                  val_per_class: int = 8, test_per_class: int = 8,
                                  num_points: int = 2048) -> list[Path]:
    """Write the objects under ``out`` in ShapeNetPart's layout and return the category file and
    the three split lists. Counts are per category; ids are random 32-digit hex names."""
    for name, value in dict(train_per_class=train_per_class, val_per_class=val_per_class,
                            test_per_class=test_per_class, num_points=num_points).items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    out = Path(out)
    (out / "train_test_split").mkdir(parents=True, exist_ok=True)
    categories = out / "synsetoffset2category.txt"
    categories.write_text("".join(f"{c}\t{s}\n" for c, s in zip(SHAPENETPART_CATEGORIES, SHAPENETPART_SYNSETS)))
    written = [categories]
    for stream, (split, per_class) in enumerate((("train", train_per_class), ("val", val_per_class),
                                                 ("test", test_per_class))):
        entries = []
        for category, synset in enumerate(SHAPENETPART_SYNSETS):
            rng = np.random.default_rng([seed, stream, category])
            (out / synset).mkdir(exist_ok=True)
            for _ in range(per_class):
                shape_id = "".join(rng.choice(list("0123456789abcdef"), 32))
                count = int(rng.integers(num_points, num_points + num_points // 4 + 1))
                rows = synthesize_part_object(category, rng, count)
                np.savetxt(out / synset / f"{shape_id}.txt", rows, fmt=["%.6f"] * 6 + ["%d"])
                entries.append(f"shape_data/{synset}/{shape_id}")
        order = np.random.default_rng([seed, stream]).permutation(len(entries))
        split_list = out / "train_test_split" / f"shuffled_{split}_file_list.json"
        split_list.write_text(json.dumps([entries[i] for i in order]))
        written.append(split_list)
    return written
