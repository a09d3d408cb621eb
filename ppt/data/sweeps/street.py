"""Procedural street scenes and a spinning LiDAR that ray-casts them (``ppt data synth-sweeps``).

A scene is a straight road along x (lanes with dashed markings) between raised sidewalks (their
road-facing sides are curbs), grass beyond them, a row of buildings on each side, trees (trunk and
crown), bushes, poles (some carrying a sign), fences, parked and driving cars and trucks,
pedestrians and parked bicycles, all simple primitives: horizontal planes, axis-aligned boxes,
vertical cylinders and spheres. The sensor sits in a lane at the LiDAR's mounting height; every
beam of every azimuth step is one ray, intersected with all primitives at once (NumPy, in chunks
of rays), and the nearest hit within range is a point with the primitive's class, its object id,
the beam number and an intensity from the material's reflectivity, the incidence angle and the
range. Ranges get 2 cm noise and 1 % of the returns drop, as on a real sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["STREET_CLASSES", "LidarModel", "LIDARS", "Street", "StreetSweep", "synthesize_street", "cast_sweep"]

STREET_CLASSES = ("road", "lane-marking", "sidewalk", "curb", "terrain", "building", "fence", "vegetation", "trunk",
                  "pole", "traffic-sign", "car", "truck", "person", "bicycle")
"""The generator's own classes; each flavor maps them to its dataset's raw label ids."""
_CLASS = {name: index for index, name in enumerate(STREET_CLASSES)}
# Diffuse reflectivity per class (lane paint and signs are retro-reflective), in [0, 1].
_REFLECTIVITY = np.array([0.18, 0.85, 0.3, 0.3, 0.4, 0.35, 0.3, 0.45, 0.25, 0.4, 0.95, 0.3, 0.35, 0.25, 0.3])

SIDEWALK_HEIGHT = 0.15


@dataclass(frozen=True)
class LidarModel:
    """A spinning LiDAR: ``beams`` evenly spread over the vertical field of view ``[fov_down,
    fov_up]`` (degrees), ``azimuth_steps`` firings per turn, mounted ``height`` metres above the
    road, returns between ``min_range`` and ``max_range`` metres."""

    beams: int
    fov_up: float
    fov_down: float
    azimuth_steps: int
    height: float
    max_range: float
    min_range: float

    def directions(self, azimuth_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Unit ray directions ``(beams * steps, 3)`` float64 and each ray's beam ``(beams * steps,)``
        (0 = the lowest beam), azimuth-major as the sensor fires."""
        steps = self.azimuth_steps if azimuth_steps is None else azimuth_steps
        elevation = np.deg2rad(np.linspace(self.fov_down, self.fov_up, self.beams))
        azimuth = np.linspace(-np.pi, np.pi, steps, endpoint=False)
        az, el = np.meshgrid(azimuth, elevation, indexing="ij")
        directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
        return directions.reshape(-1, 3), np.broadcast_to(np.arange(self.beams), az.shape).reshape(-1)


LIDARS = {
    # Velodyne HDL-64E (KITTI): 64 beams, +2.0 to -24.8 degrees, ~1.73 m above the road
    "semantickitti": LidarModel(beams=64, fov_up=2.0, fov_down=-24.8, azimuth_steps=2048, height=1.73,
                                max_range=120.0, min_range=2.5),
    # Velodyne HDL-32E (nuScenes LIDAR_TOP): 32 beams, +10 to -30 degrees, ~1.84 m
    "nuscenes": LidarModel(beams=32, fov_up=10.0, fov_down=-30.0, azimuth_steps=1084, height=1.84,
                           max_range=70.0, min_range=1.0),
    # Waymo's top lidar: 64 beams, +2.4 to -17.6 degrees, ~2.1 m
    "waymo": LidarModel(beams=64, fov_up=2.4, fov_down=-17.6, azimuth_steps=2650, height=2.1, max_range=75.0,
                        min_range=1.0),
}
"""The sensor of each flavor (beam count and vertical field of view of the dataset's LiDAR)."""


@dataclass(frozen=True)
class Street:
    """The primitives of one scene (world frame, z up, road surface at z = 0, road along x).

    ``boxes``: ``(B, 6)`` ``[x0, y0, z0, x1, y1, z1]``; ``cylinders``: ``(C, 5)`` ``[x, y, radius,
    z0, z1]`` (vertical); ``spheres``: ``(S, 4)`` ``[x, y, z, radius]``; each with ``*_class`` (index
    into :data:`STREET_CLASSES`) and ``*_object`` (object id, 0 for stuff). ``road_half_width`` and
    ``sidewalk_width`` place the ground bands, ``lane_width`` the markings; ``sensor`` is the LiDAR's
    position and ``heading`` its yaw (radians); ``moving_objects`` the ids of driving vehicles and
    walking people."""

    boxes: np.ndarray
    box_class: np.ndarray
    box_object: np.ndarray
    cylinders: np.ndarray
    cylinder_class: np.ndarray
    cylinder_object: np.ndarray
    spheres: np.ndarray
    sphere_class: np.ndarray
    sphere_object: np.ndarray
    road_half_width: float
    sidewalk_width: float
    lane_width: float
    sensor: np.ndarray
    heading: float
    moving_objects: np.ndarray


@dataclass(frozen=True)
class StreetSweep:
    """One sweep in the sensor frame (x forward along the heading, z up, origin at the sensor):
    ``coord`` ``(N, 3)`` float32, ``intensity`` ``(N,)`` float32 in ``[0, 1]``, ``beam`` ``(N,)``,
    ``label`` ``(N,)`` index into :data:`STREET_CLASSES`, ``object`` ``(N,)`` (0 for stuff),
    ``moving`` ``(N,)`` bool (points of driving vehicles)."""

    coord: np.ndarray
    intensity: np.ndarray
    beam: np.ndarray
    label: np.ndarray
    object: np.ndarray
    moving: np.ndarray


class _Builder:
    """Collects primitives; refuses any that would hold the sensor."""

    def __init__(self, sensor: np.ndarray) -> None:
        self.sensor = sensor
        self.boxes: list[tuple] = []
        self.cylinders: list[tuple] = []
        self.spheres: list[tuple] = []
        self.objects = 0
        self.moving: set[int] = set()

    def new_object(self, moving: bool = False) -> int:
        self.objects += 1
        if moving:
            self.moving.add(self.objects)
        return self.objects

    def box(self, lo, hi, name: str, obj: int = 0, clearance: float = 2.0) -> None:
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        if np.all(self.sensor[:2] > lo[:2] - clearance) and np.all(self.sensor[:2] < hi[:2] + clearance):
            return
        self.boxes.append((*lo, *hi, _CLASS[name], obj))

    def cylinder(self, x: float, y: float, radius: float, z0: float, z1: float, name: str, obj: int = 0) -> None:
        if np.hypot(x - self.sensor[0], y - self.sensor[1]) < radius + 2.0:
            return
        self.cylinders.append((x, y, radius, z0, z1, _CLASS[name], obj))

    def sphere(self, x: float, y: float, z: float, radius: float, name: str, obj: int = 0) -> None:
        if np.linalg.norm(np.array([x, y, z]) - self.sensor) < radius + 2.0:
            return
        self.spheres.append((x, y, z, radius, _CLASS[name], obj))


def _table(rows: list[tuple], width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    array = np.asarray(rows, dtype=np.float64).reshape(-1, width + 2)
    return array[:, :width].copy(), array[:, width].astype(np.int64), array[:, width + 1].astype(np.int64)


def _along(rng: np.random.Generator, extent: float, gap: tuple[float, float]) -> np.ndarray:
    """Positions along x from ``-extent`` to ``extent`` with uniform gaps in ``gap``."""
    positions, x = [], -extent + rng.uniform(0, gap[1])
    while x < extent:
        positions.append(x)
        x += rng.uniform(*gap)
    return np.array(positions)


def synthesize_street(rng: np.random.Generator, lidar: LidarModel, extent: float = 130.0) -> Street:
    """A random street of ``2 * extent`` metres with the sensor in its right lane."""
    lane = rng.uniform(3.2, 3.8)
    lanes = int(rng.integers(1, 3))  # per direction
    half = lanes * lane + rng.uniform(0.5, 2.0)  # road half width incl. a parking strip
    sidewalk = rng.uniform(2.0, 4.0)
    sensor = np.array([0.0, -lane / 2, lidar.height])
    build = _Builder(sensor)
    for side in (-1, 1):
        y0, y1 = sorted((side * half, side * (half + sidewalk)))
        build.box((-extent, y0, 0.0), (extent, y1, SIDEWALK_HEIGHT), "sidewalk")
        setback = rng.uniform(1.0, 6.0)
        front = half + sidewalk + setback
        for x in _along(rng, extent, (10.0, 26.0)):  # buildings, with gaps between some
            length, depth, height = rng.uniform(8, 22), rng.uniform(8, 16), rng.uniform(4, 22)
            if rng.random() < 0.15:
                continue
            yb = sorted((side * front, side * (front + depth)))
            build.box((x, yb[0], 0.0), (x + length, yb[1], height), "building")
        for x in _along(rng, extent, (6.0, 12.0)):  # trees at the outer edge of the sidewalk
            y = side * (half + sidewalk - rng.uniform(0.4, 0.8))
            trunk_top, crown = rng.uniform(2.0, 3.5), rng.uniform(1.2, 2.6)
            tree = build.new_object()
            build.cylinder(x, y, rng.uniform(0.12, 0.25), 0.0, trunk_top + crown * 0.5, "trunk", tree)
            build.sphere(x, y, trunk_top + crown * 0.8, crown, "vegetation", tree)
        for x in _along(rng, extent, (3.0, 8.0)):  # bushes on the grass
            if setback > 1.5:
                build.sphere(x, side * (half + sidewalk + rng.uniform(0.6, setback - 0.6)), rng.uniform(-0.3, 0.2),
                             rng.uniform(0.5, 1.1), "vegetation")
        for x in _along(rng, extent, (18.0, 35.0)):  # poles at the curb, some with a sign
            y = side * (half + 0.3)
            pole = build.new_object()
            top = rng.uniform(2.5, 6.0)
            build.cylinder(x, y, rng.uniform(0.06, 0.12), 0.0, top, "pole", pole)
            if rng.random() < 0.5:
                sign = build.new_object()
                build.box((x - 0.03, y - 0.5, top - 1.0), (x + 0.03, y + 0.5, top), "traffic-sign", sign)
        for x in _along(rng, extent, (25.0, 60.0)):  # fence segments on the grass
            y = side * (half + sidewalk + setback * rng.uniform(0.3, 0.9))
            build.box((x, y - 0.04, 0.0), (x + rng.uniform(4, 12), y + 0.04, rng.uniform(0.8, 1.6)), "fence")
        for x in _along(rng, extent, (6.0, 20.0)):  # pedestrians on the sidewalk
            person = build.new_object(moving=True)
            build.cylinder(x, side * (half + rng.uniform(0.5, sidewalk - 0.5)), rng.uniform(0.2, 0.3),
                           SIDEWALK_HEIGHT, SIDEWALK_HEIGHT + rng.uniform(1.5, 1.9), "person", person)
        for x in _along(rng, extent, (20.0, 50.0)):  # bicycles parked on the sidewalk
            bike = build.new_object()
            y = side * (half + sidewalk * 0.5)
            build.box((x, y - 0.3, SIDEWALK_HEIGHT), (x + 1.7, y + 0.3, SIDEWALK_HEIGHT + 1.0), "bicycle", bike)
        for x in _along(rng, extent, (5.5, 14.0)):  # parked cars in the outer strip
            if rng.random() < 0.5:
                continue
            _vehicle(build, rng, x, side * (half - 1.1), moving=False)
        for lane_index in range(lanes):  # driving traffic
            y = side * (lane_index + 0.5) * lane
            for x in _along(rng, extent, (20.0, 70.0)):
                _vehicle(build, rng, x, y, moving=True)
    boxes, box_class, box_object = _table(build.boxes, 6)
    cylinders, cylinder_class, cylinder_object = _table(build.cylinders, 5)
    spheres, sphere_class, sphere_object = _table(build.spheres, 4)
    return Street(boxes, box_class, box_object, cylinders, cylinder_class, cylinder_object, spheres, sphere_class,
                  sphere_object, half, sidewalk, lane, sensor, float(rng.uniform(-0.15, 0.15)),
                  np.array(sorted(build.moving), dtype=np.int64))


def _vehicle(build: _Builder, rng: np.random.Generator, x: float, y: float, moving: bool) -> None:
    """A car (body and cabin) or, one time in seven, a truck, centred on ``y``."""
    obj = build.new_object(moving)
    if rng.random() < 1 / 7:
        length, width = rng.uniform(7, 11), rng.uniform(2.3, 2.6)
        build.box((x, y - width / 2, 0.35), (x + length, y + width / 2, rng.uniform(3.0, 3.8)), "truck", obj)
        return
    length, width = rng.uniform(3.9, 4.9), rng.uniform(1.7, 1.9)
    build.box((x, y - width / 2, 0.25), (x + length, y + width / 2, 0.95), "car", obj)
    build.box((x + length * 0.25, y - width / 2 + 0.1, 0.95), (x + length * 0.8, y + width / 2 - 0.1,
                                                                 rng.uniform(1.35, 1.6)), "car", obj)


def _visible(street: Street, azimuth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, cylinders and spheres whose footprint's bounding circle, seen from the sensor, can
    meet a ray of azimuths ``azimuth`` (radians, one contiguous sector shorter than half a turn):
    culling them first keeps the ray-primitive tables small."""
    middle = np.arctan2(np.sin(azimuth).mean(), np.cos(azimuth).mean())
    half_sector = np.abs(np.angle(np.exp(1j * (azimuth - middle)))).max()

    def keep(center: np.ndarray, radius: np.ndarray) -> np.ndarray:
        offset = center - street.sensor[:2]
        distance = np.linalg.norm(offset, axis=1)
        direction = np.arctan2(offset[:, 1], offset[:, 0])
        spread = np.arcsin(np.clip(radius / np.maximum(distance, 1e-9), 0.0, 1.0))
        return (distance <= radius) | (np.abs(np.angle(np.exp(1j * (direction - middle)))) <= half_sector + spread)

    boxes = street.boxes
    return (keep((boxes[:, :2] + boxes[:, 3:5]) / 2, np.linalg.norm(boxes[:, 3:5] - boxes[:, :2], axis=1) / 2),
            keep(street.cylinders[:, :2], street.cylinders[:, 2]), keep(street.spheres[:, :2], street.spheres[:, 3]))


def _cast_chunk(street: Street, origin: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nearest hit of rays ``d`` ``(R, 3)`` from ``origin`` (one azimuth sector): distance (inf =
    none), class, object, and the surface normal (for the intensity)."""
    rays = d.shape[0]
    t_best = np.full(rays, np.inf)
    label = np.full(rays, -1, dtype=np.int64)
    obj = np.zeros(rays, dtype=np.int64)
    normal = np.tile([0.0, 0.0, 1.0], (rays, 1))
    eps = 1e-6

    def record(t: np.ndarray, classes: np.ndarray, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays whose nearest hit in ``t`` ``(R, K)`` beats their best so far take it (distance,
        class, object); returns those rays and the column each hit."""
        if t.shape[1] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        column = np.argmin(t, axis=1)
        nearest = t[np.arange(rays), column]
        rows = np.nonzero(nearest < t_best)[0]
        t_best[rows], label[rows], obj[rows] = nearest[rows], classes[column[rows]], objects[column[rows]]
        return rows, column[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        # ground: the road plane between the sidewalks, the grass plane beyond them
        for height, inside in ((0.0, lambda y: np.abs(y) < street.road_half_width),
                               (SIDEWALK_HEIGHT, lambda y: np.abs(y) > street.road_half_width + street.sidewalk_width)):
            t = (height - origin[2]) / d[:, 2]
            hit = (d[:, 2] < 0) & (t > eps) & (t < t_best)
            y = origin[1] + t * d[:, 1]
            hit &= inside(y)
            t_best[hit] = t[hit]
            label[hit] = _CLASS["road"] if height == 0.0 else _CLASS["terrain"]
            obj[hit] = 0
            normal[hit] = (0.0, 0.0, 1.0)
        on_road = label == _CLASS["road"]
        if on_road.any():  # dashed lane markings: 3 m of paint every 9 m on the lane boundaries
            x = origin[0] + t_best * d[:, 0]
            y = origin[1] + t_best * d[:, 1]
            boundary = np.abs(np.abs(y) / street.lane_width - np.round(np.abs(y) / street.lane_width))
            paint = on_road & (boundary * street.lane_width < 0.08) & (np.abs(y) > 0.5 * street.lane_width) \
                & (np.mod(x, 9.0) < 3.0) & (np.abs(y) < street.road_half_width - 0.3)
            paint |= on_road & (np.abs(y) < 0.08)  # centre line, solid
            label[paint] = _CLASS["lane-marking"]
        box_kept, cylinder_kept, sphere_kept = _visible(street, np.arctan2(d[:, 1], d[:, 0]))
        boxes, cylinders, spheres = street.boxes[box_kept], street.cylinders[cylinder_kept], street.spheres[sphere_kept]
        # boxes: slabs
        lo, hi = boxes[None, :, :3], boxes[None, :, 3:]
        inv = 1.0 / d[:, None, :]
        t1, t2 = (lo - origin) * inv, (hi - origin) * inv
        t_near, t_far = np.minimum(t1, t2), np.maximum(t1, t2)
        t_enter, t_exit = t_near.max(axis=2), t_far.min(axis=2)
        t = np.where((t_exit >= t_enter) & (t_enter > eps), t_enter, np.inf)
        rows, column = record(t, street.box_class[box_kept], street.box_object[box_kept])
        axis = np.argmax(t_near[rows, column], axis=1)
        face = np.zeros((rows.shape[0], 3))
        face[np.arange(rows.shape[0]), axis] = -np.sign(d[rows, axis])
        normal[rows] = face
        # the road-facing side of a sidewalk is the curb
        curb = (label[rows] == _CLASS["sidewalk"]) & (axis == 1)
        label[rows[curb]] = _CLASS["curb"]
        # vertical cylinders: the side wall between z0 and z1
        cx, cy, radius = (cylinders[None, :, i] for i in range(3))
        ox, oy = origin[0] - cx, origin[1] - cy
        a = d[:, None, 0] ** 2 + d[:, None, 1] ** 2
        b = 2 * (ox * d[:, None, 0] + oy * d[:, None, 1])
        c = ox ** 2 + oy ** 2 - radius ** 2
        disc = b * b - 4 * a * c
        t = (-b - np.sqrt(disc)) / (2 * a)
        z = origin[2] + t * d[:, None, 2]
        t = np.where((disc >= 0) & (t > eps) & (z >= cylinders[None, :, 3]) & (z <= cylinders[None, :, 4]), t, np.inf)
        rows, column = record(t, street.cylinder_class[cylinder_kept], street.cylinder_object[cylinder_kept])
        radial = origin[:2] + t_best[rows, None] * d[rows, :2] - cylinders[column, :2]
        normal[rows] = np.concatenate([radial / np.linalg.norm(radial, axis=1, keepdims=True),
                                       np.zeros((rows.shape[0], 1))], 1)
        # spheres
        oc = origin - spheres[:, :3]  # (S, 3)
        b = d @ oc.T
        c = ((oc ** 2).sum(-1) - spheres[:, 3] ** 2)[None, :]
        disc = b * b - c
        t = -b - np.sqrt(disc)
        t = np.where((disc >= 0) & (t > eps), t, np.inf)
        rows, column = record(t, street.sphere_class[sphere_kept], street.sphere_object[sphere_kept])
        outward = origin + t_best[rows, None] * d[rows] - spheres[column, :3]
        normal[rows] = outward / np.linalg.norm(outward, axis=1, keepdims=True)
    return t_best, label, obj, normal


def cast_sweep(street: Street, lidar: LidarModel, rng: np.random.Generator, azimuth_steps: int | None = None,
               chunk: int = 2048) -> StreetSweep:
    """One turn of ``lidar`` at ``street.sensor``: the returns in the sensor frame."""
    directions, beam = lidar.directions(azimuth_steps)
    cos, sin = np.cos(street.heading), np.sin(street.heading)
    heading = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    world = directions @ heading.T  # the sensor looks along the heading
    parts = [_cast_chunk(street, street.sensor, world[start:start + chunk]) for start in range(0, len(world), chunk)]
    t, label, obj, normal = (np.concatenate(part) for part in zip(*parts))
    keep = np.isfinite(t) & (t >= lidar.min_range) & (t <= lidar.max_range) & (rng.random(t.shape[0]) >= 0.01)
    t = t[keep] + rng.normal(0.0, 0.02, int(keep.sum()))
    cosine = np.abs((world[keep] * normal[keep]).sum(1))
    intensity = _REFLECTIVITY[label[keep]] * (0.3 + 0.7 * cosine) * np.exp(-t / 200.0)
    intensity = np.clip(intensity + rng.normal(0.0, 0.02, intensity.shape[0]), 0.0, 1.0)
    coord = directions[keep] * t[:, None]
    moving = np.isin(obj[keep], street.moving_objects)
    return StreetSweep(coord.astype(np.float32), intensity.astype(np.float32), beam[keep], label[keep], obj[keep],
                       moving)
