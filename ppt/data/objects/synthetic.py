"""Procedural objects of ScanObjectNN's 15 classes, sampled as surface points and written as
ScanObjectNN h5 files: the embedded data of the object recipes, which run without downloads.

Every class is assembled from primitive surfaces (boxes, cylinders, ellipsoids, torus arcs) whose
parts vary per instance: their number (legs, shelf boards, cushions, doors), presence (armrests,
lids, footboards) and proportions. Objects stand on ``y = 0`` with ``y`` up, sized in metres.

Two variants, written under ScanObjectNN's file names (:func:`ppt.data.scanobjectnn_file`):

* ``clean``: the object alone, randomly turned about ``y`` and stretched, with sensor noise,
  normalised to the unit sphere -> ``main_split_nobg/*_objectdataset.h5`` (OBJ_ONLY).
* ``background``: the object in a scene (floor, a wall, a neighbouring object), cropped by its
  bounding box -> ``main_split/*_objectdataset.h5`` (OBJ_BG); the same with the box shifted by up
  to half its size, turned and rescaled before cropping (partial object, more clutter)
  -> ``main_split/*_objectdataset_augmentedrot_scale75.h5`` (PB_T50_RS). Crops are turned about ``y``.

``mask`` marks background points with ``-1`` and object points with their part index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from ppt.data.objects.scanobjectnn import SCANOBJECTNN_CLASSES, scanobjectnn_file, write_scanobjectnn_h5

__all__ = ["synthesize_object", "synthesize_scan", "write_synthetic_objects", "SYNTHETIC_VARIANTS"]

SYNTHETIC_VARIANTS = {"clean": ("OBJ_ONLY",), "background": ("OBJ_BG", "PB_T50_RS")}
"""Synthetic variant -> the ScanObjectNN variants whose files it writes."""

_AXES = {"x": (1, 0, 2), "y": (0, 1, 2), "z": (0, 2, 1)}  # local (radial, axial, radial) -> world column


# ---------------------------------------------------------------------------------------------
# Primitive surfaces. Each has an area and draws points uniformly (ellipsoids and tori
# approximately) on its surface.


@dataclass(frozen=True)
class _Box:
    """Faces of the axis-aligned box ``[lo, hi]``; ``faces`` lists the ones present
    (0: -x, 1: +x, 2: -y, 3: +y, 4: -z, 5: +z)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    faces: tuple[int, ...] = (0, 1, 2, 3, 4, 5)

    def _face_areas(self) -> np.ndarray:
        size = np.subtract(self.hi, self.lo)
        per_axis = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]])
        return np.array([per_axis[f // 2] if f in self.faces else 0.0 for f in range(6)])

    def area(self) -> float:
        return float(self._face_areas().sum())

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        areas = self._face_areas()
        face = rng.choice(6, size=count, p=areas / areas.sum())
        lo, hi = np.array(self.lo), np.array(self.hi)
        points = lo + rng.random((count, 3)) * (hi - lo)
        axis = face // 2
        points[np.arange(count), axis] = np.where(face % 2 == 1, hi[axis], lo[axis])
        return points


def _box(center: tuple[float, float, float], size: tuple[float, float, float], faces=(0, 1, 2, 3, 4, 5)) -> _Box:
    c, s = np.array(center), np.array(size) / 2
    return _Box(tuple(c - s), tuple(c + s), tuple(faces))


@dataclass(frozen=True)
class _Cylinder:
    """Side (and caps) of a cylinder along ``axis`` from ``base`` over ``length``."""

    base: tuple[float, float, float]
    radius: float
    length: float
    axis: str = "y"
    caps: tuple[bool, bool] = (True, True)

    def _areas(self) -> np.ndarray:
        cap = math.pi * self.radius**2
        return np.array([2 * math.pi * self.radius * self.length, cap * self.caps[0], cap * self.caps[1]])

    def area(self) -> float:
        return float(self._areas().sum())

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        areas = self._areas()
        where = rng.choice(3, size=count, p=areas / areas.sum())
        angle = rng.random(count) * 2 * math.pi
        radius = np.where(where == 0, self.radius, self.radius * np.sqrt(rng.random(count)))
        height = np.select([where == 0, where == 1], [rng.random(count) * self.length, 0.0], self.length)
        local = np.stack([radius * np.cos(angle), height, radius * np.sin(angle)], axis=1)
        return np.array(self.base) + local[:, _AXES[self.axis]]


@dataclass(frozen=True)
class _Ellipsoid:
    """Surface of an ellipsoid; ``lower_half`` keeps the half below its centre (bowls, basins)."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    lower_half: bool = False

    def area(self) -> float:
        a, b, c = self.radii  # Knud Thomsen's approximation, within about 1%
        p = 1.6075
        full = 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
        return full / 2 if self.lower_half else full

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        direction = rng.standard_normal((count, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        if self.lower_half:
            direction[:, 1] = -np.abs(direction[:, 1])
        return np.array(self.center) + direction * np.array(self.radii)


@dataclass(frozen=True)
class _TorusArc:
    """A tube of radius ``tube`` along a circular arc of radius ``radius`` in the plane normal to
    ``axis`` (``"z"``: the x-y plane), from angle ``start`` to ``stop`` (handles, rims, seats)."""

    center: tuple[float, float, float]
    radius: float
    tube: float
    axis: str = "z"
    start: float = 0.0
    stop: float = 2 * math.pi

    def area(self) -> float:
        return 2 * math.pi * self.tube * self.radius * (self.stop - self.start)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        along = self.start + rng.random(count) * (self.stop - self.start)
        around = rng.random(count) * 2 * math.pi
        ring = self.radius + self.tube * np.cos(around)
        local = np.stack([ring * np.cos(along), ring * np.sin(along), self.tube * np.sin(around)], axis=1)
        order = {"z": (0, 1, 2), "y": (0, 2, 1), "x": (2, 0, 1)}[self.axis]
        return np.array(self.center) + local[:, order]


_Part = _Box | _Cylinder | _Ellipsoid | _TorusArc


def _sample_parts(parts: list[_Part], count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points over ``parts`` in proportion to their areas, and each point's part index."""
    areas = np.array([part.area() for part in parts])
    part_of = rng.choice(len(parts), size=count, p=areas / areas.sum())
    points = np.empty((count, 3))
    for index, part in enumerate(parts):
        chosen = part_of == index
        if chosen.any():
            points[chosen] = part.sample(int(chosen.sum()), rng)
    return points, part_of


# ---------------------------------------------------------------------------------------------
# The 15 classes. Each builder draws one instance's parts with ``rng``.


def _legs(rng, width: float, depth: float, height: float, inset: float, round_legs: bool, thickness: float) -> list[_Part]:
    legs = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (width / 2 - inset), sz * (depth / 2 - inset)
            if round_legs:
                legs.append(_Cylinder((x, 0.0, z), thickness / 2, height, caps=(True, False)))
            else:
                legs.append(_box((x, height / 2, z), (thickness, height, thickness), faces=(0, 1, 2, 4, 5)))
    return legs


def _bag(rng) -> list[_Part]:
    w, h, d = rng.uniform(0.3, 0.5), rng.uniform(0.25, 0.4), rng.uniform(0.12, 0.22)
    parts: list[_Part] = [_Ellipsoid((0, h / 2, 0), (w / 2, h / 2, d / 2))] if rng.random() < 0.5 else \
        [_box((0, h / 2, 0), (w, h, d))]
    for offset in ([0.0] if rng.random() < 0.6 else [-d / 4, d / 4]):
        parts.append(_TorusArc((0, h * 0.95, offset), rng.uniform(0.08, 0.15), 0.012, "z", 0.0, math.pi))
    return parts


def _bin(rng) -> list[_Part]:
    h = rng.uniform(0.35, 0.7)
    if rng.random() < 0.5:
        r = rng.uniform(0.15, 0.25)
        parts: list[_Part] = [_Cylinder((0, 0, 0), r, h, caps=(True, False))]
        if rng.random() < 0.5:
            parts.append(_TorusArc((0, h, 0), r, 0.012, "y"))
        return parts
    w, d = rng.uniform(0.25, 0.45), rng.uniform(0.2, 0.35)
    return [_box((0, h / 2, 0), (w, h, d), faces=(0, 1, 2, 4, 5))]


def _box_object(rng) -> list[_Part]:
    w, h, d = rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.5)
    parts: list[_Part] = [_box((0, h / 2, 0), (w, h, d))]
    if rng.random() < 0.5:  # lid
        parts.append(_box((0, h + 0.02, 0), (w * 1.04, 0.04, d * 1.04)))
    return parts


def _cabinet(rng) -> list[_Part]:
    w, h, d = rng.uniform(0.4, 1.0), rng.uniform(0.6, 1.8), rng.uniform(0.35, 0.6)
    base = rng.uniform(0.0, 0.15)
    parts: list[_Part] = [_box((0, base + h / 2, 0), (w, h, d))]
    doors = int(rng.integers(1, 3))
    for i in range(doors):
        x = -w / 2 + (i + 0.5) * w / doors
        parts.append(_box((x, base + h / 2, d / 2 + 0.01), (w / doors - 0.02, h - 0.04, 0.02)))
        parts.append(_box((x + (0.35 if i == doors - 1 else -0.35) * w / doors, base + h * 0.55, d / 2 + 0.04),
                          (0.02, 0.12, 0.03)))
    if base > 0.03:
        parts += _legs(rng, w, d, base, 0.04, False, 0.04)
    return parts


def _chair(rng) -> list[_Part]:
    w, d, seat = rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.5)
    back = rng.uniform(0.35, 0.6)
    parts: list[_Part] = [_box((0, seat, 0), (w, 0.05, d))]
    parts += _legs(rng, w, d, seat - 0.025, 0.03, rng.random() < 0.5, rng.uniform(0.025, 0.045))
    if rng.random() < 0.6:  # solid back
        parts.append(_box((0, seat + back / 2, -d / 2 + 0.02), (w, back, 0.04)))
    else:  # slatted back
        slats = int(rng.integers(3, 6))
        for i in range(slats):
            x = -w / 2 + (i + 0.5) * w / slats
            parts.append(_box((x, seat + back / 2, -d / 2 + 0.02), (0.03, back, 0.03)))
        parts.append(_box((0, seat + back, -d / 2 + 0.02), (w, 0.05, 0.04)))
    if rng.random() < 0.4:  # armrests
        for sx in (-1, 1):
            parts.append(_box((sx * w / 2, seat + 0.2, 0), (0.04, 0.04, d * 0.9)))
            parts.append(_box((sx * w / 2, seat + 0.1, d * 0.35), (0.03, 0.2, 0.03)))
    return parts


def _desk(rng) -> list[_Part]:
    w, d, h = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.8), rng.uniform(0.7, 0.78)
    parts: list[_Part] = [_box((0, h - 0.02, 0), (w, 0.04, d))]
    pedestals = int(rng.integers(1, 3))
    pw = rng.uniform(0.35, 0.45)
    sides = [1] if pedestals == 1 else [-1, 1]
    for sx in sides:
        parts.append(_box((sx * (w / 2 - pw / 2), (h - 0.04) / 2, 0), (pw, h - 0.04, d * 0.95)))
        for level in range(int(rng.integers(2, 4))):  # drawer fronts
            parts.append(_box((sx * (w / 2 - pw / 2), 0.15 + level * 0.2, d * 0.475 + 0.01), (pw * 0.8, 0.15, 0.02)))
    if pedestals == 1:
        parts.append(_box((-w / 2 + 0.02, (h - 0.04) / 2, 0), (0.04, h - 0.04, d * 0.95)))
    if rng.random() < 0.5:  # modesty panel
        parts.append(_box((0, h * 0.6, -d / 2 + 0.02), (w * 0.9, h * 0.5, 0.02)))
    return parts


def _display(rng) -> list[_Part]:
    w = rng.uniform(0.45, 0.8)
    h, neck = w * rng.uniform(0.55, 0.7), rng.uniform(0.08, 0.2)
    parts: list[_Part] = [_box((0, 0.015, 0), (rng.uniform(0.2, 0.3), 0.03, rng.uniform(0.15, 0.22)))]
    if rng.random() < 0.5:
        parts.append(_Cylinder((0, 0.03, -0.03), 0.025, neck + h / 2))
    else:
        parts.append(_box((0, 0.03 + (neck + h / 2) / 2, -0.04), (0.06, neck + h / 2, 0.03)))
    parts.append(_box((0, 0.03 + neck + h / 2, 0), (w, h, rng.uniform(0.02, 0.06))))
    return parts


def _door(rng) -> list[_Part]:
    w, h, t = rng.uniform(0.7, 0.95), rng.uniform(1.9, 2.1), rng.uniform(0.035, 0.05)
    parts: list[_Part] = [_box((0, h / 2, 0), (w, h, t))]
    side = rng.choice([-1, 1])
    if rng.random() < 0.5:
        parts.append(_Cylinder((side * w * 0.4, h * 0.48, t / 2), 0.03, 0.06, axis="z"))
    else:
        parts.append(_Cylinder((side * w * 0.4, h * 0.48, t / 2 + 0.05), 0.012, 0.12, axis="x"))
    if rng.random() < 0.5:  # frame
        parts += [_box((-w / 2 - 0.04, h / 2, 0), (0.08, h + 0.08, t * 2.5)),
                  _box((w / 2 + 0.04, h / 2, 0), (0.08, h + 0.08, t * 2.5)),
                  _box((0, h + 0.04, 0), (w + 0.16, 0.08, t * 2.5))]
    return parts


def _shelf(rng) -> list[_Part]:
    w, h, d = rng.uniform(0.6, 1.2), rng.uniform(0.8, 2.0), rng.uniform(0.25, 0.4)
    parts: list[_Part] = [_box((sx * (w / 2 - 0.01), h / 2, 0), (0.02, h, d)) for sx in (-1, 1)]
    boards = int(rng.integers(3, 7))
    for i in range(boards):
        parts.append(_box((0, 0.01 + i * (h - 0.02) / (boards - 1), 0), (w - 0.04, 0.02, d)))
    if rng.random() < 0.5:
        parts.append(_box((0, h / 2, -d / 2 + 0.005), (w, h, 0.01)))
    return parts


def _table(rng) -> list[_Part]:
    h = rng.uniform(0.45, 0.78)
    if rng.random() < 0.5:
        r = rng.uniform(0.35, 0.6)
        parts: list[_Part] = [_Cylinder((0, h - 0.04, 0), r, 0.04)]
        w = d = r * 1.2
    else:
        w, d = rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.0)
        parts = [_box((0, h - 0.02, 0), (w, 0.04, d))]
    if rng.random() < 0.7:
        parts += _legs(rng, w, d, h - 0.04, 0.06, rng.random() < 0.5, rng.uniform(0.04, 0.07))
    else:  # pedestal and foot
        parts += [_Cylinder((0, 0.03, 0), 0.05, h - 0.07, caps=(False, False)), _Cylinder((0, 0, 0), 0.3, 0.03)]
    return parts


def _bed(rng) -> list[_Part]:
    w, l, mattress = rng.uniform(0.9, 1.8), rng.uniform(1.9, 2.1), rng.uniform(0.4, 0.6)
    parts: list[_Part] = [_box((0, mattress / 2, 0), (w, mattress, l))]
    parts.append(_box((0, (mattress + rng.uniform(0.3, 0.6)) / 2, -l / 2 - 0.03),
                      (w + 0.06, mattress + rng.uniform(0.3, 0.6), 0.06)))
    if rng.random() < 0.5:  # footboard
        parts.append(_box((0, mattress * 0.6, l / 2 + 0.03), (w + 0.06, mattress * 1.2, 0.06)))
    pillows = 1 if w < 1.3 else int(rng.integers(1, 3))
    for i in range(pillows):
        x = 0.0 if pillows == 1 else (i - 0.5) * w / 2
        parts.append(_Ellipsoid((x, mattress + 0.06, -l / 2 + 0.25), (min(0.3, w / 2 / pillows + 0.05), 0.07, 0.18)))
    return parts


def _pillow(rng) -> list[_Part]:
    w, d, t = rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.5), rng.uniform(0.08, 0.18)
    if rng.random() < 0.7:
        return [_Ellipsoid((0, t / 2, 0), (w / 2, t / 2, d / 2))]
    return [_Ellipsoid((0, t / 2, 0), (w / 2, t / 2, d / 2)), _Ellipsoid((0.03, t * 1.4, 0.02), (w * 0.45, t / 2, d * 0.45))]


def _sink(rng) -> list[_Part]:
    counter, w, d = rng.uniform(0.75, 0.9), rng.uniform(0.45, 0.7), rng.uniform(0.4, 0.55)
    if rng.random() < 0.5:  # vanity cabinet
        parts: list[_Part] = [_box((0, (counter - 0.03) / 2, 0), (w, counter - 0.03, d))]
    else:  # pedestal
        parts = [_Cylinder((0, 0, 0), rng.uniform(0.07, 0.12), counter - 0.15)]
    parts.append(_box((0, counter - 0.015, 0), (w + 0.04, 0.03, d + 0.02), faces=(0, 1, 2, 4, 5)))  # counter rim
    parts.append(_Ellipsoid((0, counter, 0.02), (w * 0.38, 0.14, d * 0.35), lower_half=True))  # basin
    parts.append(_Cylinder((0, counter, -d * 0.4), 0.018, rng.uniform(0.15, 0.25), caps=(False, True)))  # faucet
    return parts


def _sofa(rng) -> list[_Part]:
    w, d, seat = rng.uniform(1.4, 2.2), rng.uniform(0.8, 0.95), rng.uniform(0.38, 0.45)
    arm = rng.uniform(0.12, 0.22)
    parts: list[_Part] = [_box((0, seat / 2 - 0.05, 0), (w, seat - 0.1, d))]
    parts.append(_box((0, seat + 0.2, -d / 2 + 0.1), (w, rng.uniform(0.45, 0.6), 0.2)))
    for sx in (-1, 1):
        parts.append(_box((sx * (w / 2 - arm / 2), seat + 0.05, 0), (arm, rng.uniform(0.2, 0.35), d)))
    cushions = int(rng.integers(2, 4))
    inner = w - 2 * arm
    for i in range(cushions):
        x = -inner / 2 + (i + 0.5) * inner / cushions
        parts.append(_box((x, seat - 0.02, 0.08), (inner / cushions - 0.02, 0.1, d - 0.25)))
    return parts


def _toilet(rng) -> list[_Part]:
    bowl_h = rng.uniform(0.38, 0.42)
    rx, rz = rng.uniform(0.17, 0.21), rng.uniform(0.22, 0.28)
    parts: list[_Part] = [_Cylinder((0, 0, 0.05), rng.uniform(0.1, 0.13), bowl_h * 0.6, caps=(False, False))]
    parts.append(_Ellipsoid((0, bowl_h, 0.08), (rx, bowl_h * 0.45, rz), lower_half=True))
    parts.append(_TorusArc((0, bowl_h + 0.01, 0.08), (rx + rz) / 2 * 0.85, 0.03, "y"))  # seat
    lid = rng.random()
    if lid < 0.35:  # raised lid leaning on the tank
        parts.append(_box((0, bowl_h + rz, -0.1), (2 * rx, 2 * rz, 0.02)))
    elif lid < 0.7:  # closed lid
        parts.append(_Ellipsoid((0, bowl_h + 0.04, 0.08), (rx, 0.015, rz)))
    if rng.random() < 0.8:  # tank
        parts.append(_box((0, bowl_h + 0.2, -0.2), (rng.uniform(0.35, 0.45), rng.uniform(0.3, 0.4), 0.17)))
    else:  # wall-mounted flush pipe
        parts.append(_Cylinder((0, bowl_h, -0.18), 0.025, 0.5))
    return parts


_BUILDERS: dict[str, Callable[[np.random.Generator], list[_Part]]] = {
    "bag": _bag, "bin": _bin, "box": _box_object, "cabinet": _cabinet, "chair": _chair, "desk": _desk,
    "display": _display, "door": _door, "shelf": _shelf, "table": _table, "bed": _bed, "pillow": _pillow,
    "sink": _sink, "sofa": _sofa, "toilet": _toilet,
}
assert tuple(_BUILDERS) == SCANOBJECTNN_CLASSES


# ---------------------------------------------------------------------------------------------
# Objects, scans and files.


def _yaw(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _unit_sphere(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    return centred / np.linalg.norm(centred, axis=1).max()


def _check_class(label: int) -> None:
    if not 0 <= label < len(SCANOBJECTNN_CLASSES):
        raise ValueError(f"class label must lie in [0, {len(SCANOBJECTNN_CLASSES)}), got {label}")


def synthesize_object(label: int, rng: np.random.Generator, num_points: int = 2048,
                      noise: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """One object of class ``label`` alone: ``(num_points, 3)`` float32 on the unit sphere and each
    point's part index. Turned about ``y`` at random, each axis stretched by 0.85-1.15, with
    Gaussian noise of ``noise`` (metres, before normalising)."""
    _check_class(label)
    parts = _BUILDERS[SCANOBJECTNN_CLASSES[label]](rng)
    points, part_of = _sample_parts(parts, num_points, rng)
    points = points * rng.uniform(0.85, 1.15, 3) @ _yaw(rng.uniform(0, 2 * math.pi)).T
    points += noise * rng.standard_normal(points.shape)
    return _unit_sphere(points).astype(np.float32), part_of


def synthesize_scan(label: int, rng: np.random.Generator, num_points: int = 2048, perturb: bool = False,
                    noise: float = 0.006) -> tuple[np.ndarray, np.ndarray]:
    """One object of class ``label`` cropped from a scene with floor, wall and a neighbouring object:
    ``(num_points, 3)`` float32 on the unit sphere and a mask (part index, ``-1`` = background).

    ``perturb``: the crop box is shifted by up to half its size along each horizontal axis, turned
    and rescaled by 0.8-1.2 before cropping (PB_T50_RS-like). The crop is turned about ``y`` at random.
    """
    _check_class(label)
    obj = _BUILDERS[SCANOBJECTNN_CLASSES[label]](rng)
    obj_points, _ = _sample_parts(obj, 4096, rng)
    lo, hi = obj_points.min(axis=0), obj_points.max(axis=0)
    size = hi - lo
    # A neighbour of another class beside the object, a floor under both, a wall behind.
    other = int(rng.integers(len(SCANOBJECTNN_CLASSES) - 1))
    other += other >= label
    neighbour = _BUILDERS[SCANOBJECTNN_CLASSES[other]](rng)
    angle = rng.uniform(0, 2 * math.pi)
    offset = np.array([math.cos(angle), 0.0, math.sin(angle)]) * (np.linalg.norm(size[[0, 2]]) * 0.5 + rng.uniform(0.3, 0.7))
    background: list[_Part] = [_Box((lo[0] - 1.0, -0.01, lo[2] - 1.0), (hi[0] + 1.0, 0.0, hi[2] + 1.0), faces=(3,))]
    if rng.random() < 0.7:
        wall_z = lo[2] - rng.uniform(0.05, 0.4)
        background.append(_Box((lo[0] - 1.0, 0.0, wall_z), (hi[0] + 1.0, max(hi[1] + 0.5, 2.0), wall_z), faces=(5,)))
    parts = obj + neighbour + background
    owner = np.array([0] * len(obj) + [1] * len(neighbour) + [2] * len(background))
    points, part_of = _sample_parts(parts, 10 * num_points, rng)
    neighbour_points = owner[part_of] == 1
    points[neighbour_points] = points[neighbour_points] @ _yaw(rng.uniform(0, 2 * math.pi)).T + offset
    mask = np.where(owner[part_of] == 0, part_of, -1)
    points += noise * rng.standard_normal(points.shape)

    # Crop with the object's box (grown by 10%), perturbed for PB_T50_RS.
    center, half = (lo + hi) / 2, size * 0.55
    rotation = np.eye(3)
    if perturb:
        center = center + np.array([1.0, 0.0, 1.0]) * rng.uniform(-0.5, 0.5, 3) * size
        rotation = _yaw(rng.uniform(-math.pi / 4, math.pi / 4))
        half = half * rng.uniform(0.8, 1.2)
    local = (points - center) @ rotation
    inside = np.flatnonzero(np.all(np.abs(local) <= half, axis=1))
    chosen = rng.choice(inside, size=num_points, replace=len(inside) < num_points)
    cloud = (points[chosen] - center) @ _yaw(rng.uniform(0, 2 * math.pi)).T
    return _unit_sphere(cloud).astype(np.float32), mask[chosen]


def write_synthetic_objects(out: str | PathLike, variant: Literal["clean", "background"] = "clean", *, seed: int = 0,
                            train_per_class: int = 64, test_per_class: int = 16, num_points: int = 2048) -> list[Path]:
    """Write a synthetic ScanObjectNN under ``out`` (see the module docstring) and return the files.

    Train and test objects come from independent random streams of ``seed``; objects are ordered
    class by class, as a sampler shuffles them anyway.
    """
    if variant not in SYNTHETIC_VARIANTS:
        raise ValueError(f"synthetic object variant must be one of {sorted(SYNTHETIC_VARIANTS)}, got {variant!r}")
    for name, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class),
                        ("num_points", num_points)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    out = Path(out)
    written = []
    for split_index, (split, per_class) in enumerate((("train", train_per_class), ("test", test_per_class))):
        for scan_variant in SYNTHETIC_VARIANTS[variant]:
            rng = np.random.default_rng([seed, split_index, list(SYNTHETIC_VARIANTS[variant]).index(scan_variant)])
            labels = np.repeat(np.arange(len(SCANOBJECTNN_CLASSES)), per_class)
            clouds, masks = [], []
            for label in labels:
                if variant == "clean":
                    cloud, mask = synthesize_object(int(label), rng, num_points)
                else:
                    cloud, mask = synthesize_scan(int(label), rng, num_points, perturb=scan_variant == "PB_T50_RS")
                clouds.append(cloud)
                masks.append(mask)
            path = out / scanobjectnn_file(scan_variant, split)
            write_scanobjectnn_h5(path, np.stack(clouds), labels, np.stack(masks))
            written.append(path)
    return written
