"""Writers: synthetic rooms saved as datasets in Pointcept's preprocessed layout of ScanNet,
S3DIS or Structured3D (their split folders, file names and label sets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from ppt.data.scenes.data_efficient import write_data_efficient_lists
from ppt.data.scenes.rooms.flavors import S3DIS, SCANNET, SCANNET200_LABELS, STRUCTURED3D, RoomFlavor, resolve_flavor
from ppt.data.scenes.rooms.furniture import randint
from ppt.data.scenes.rooms.room import SyntheticRoom, synthesize_room
from ppt.data.scenes.rooms.variants import RoomVariant
from ppt.data.scenes.scannet import ScanNet
from ppt.data.scenes.scannet200 import SCANNET200_CLASSES

__all__ = ["write_synthetic_rooms"]


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


def _room(layout: RoomFlavor, variant: RoomVariant, seed: int, density: float,
          origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[SyntheticRoom, np.ndarray, np.ndarray]:
    """One room of ``variant``'s capture flavor for a dataset of ``layout``: the room, its labels in
    ``layout``'s class order (the variant's relabelling applied) and its colours (the variant's)."""
    room = synthesize_room(variant.capture_flavor(layout), seed=seed, density=density, origin=origin)
    return room, room.labels(layout.class_names, variant.label_table(layout)), variant.apply_colors(room.color)


def _write_scannet(out: Path, scenes: int, seed: int, density: float, variant: RoomVariant) -> list[Path]:
    # ScanNet v2: 1201 train / 312 val / 100 test scans; test scans come without labels.
    written = []
    splits = ("train", "val", "test")
    _make_folders(out, splits)
    index = 0
    for split, count in zip(splits, _split_counts(scenes, (0.745, 0.193, 0.062))):
        for _ in range(count):
            room, segment, color = _room(SCANNET, variant, _scene_seed(seed, index), density)
            arrays = {"coord": room.coord, "color": color, "normal": room.normal}
            if split != "test":  # as Pointcept's preprocess_scannet.py writes them
                arrays["segment20"] = segment.astype(np.int16)
                arrays["segment200"] = room.labels(SCANNET200_CLASSES, SCANNET200_LABELS)  # int64, as Pointcept's
                arrays["instance"] = room.instance.astype(np.int64)
            folder = out / split / f"scene{index:04d}_00"
            _save(folder, arrays)
            written.append(folder)
            index += 1
    # the data-efficient benchmark's lists over the training scenes, where Pointcept keeps them; at
    # least two scenes per list, one batch of the recipes (1 % of a few dozen rooms would be one)
    write_data_efficient_lists(ScanNet(out, "train"), out / "tasks", seed=seed, min_scenes=2)
    return written


def _write_s3dis(out: Path, scenes: int, seed: int, density: float, variant: RoomVariant) -> list[Path]:
    # Rooms go round the areas so that Area_5 (the held-out area) has one as soon as there are two.
    written = []
    _make_folders(out, [f"Area_{area}" for area in range(1, 7)])
    area_cycle = (1, 5, 2, 3, 4, 6)
    per_area_type: dict[tuple[int, str], int] = {}
    for index in range(scenes):
        area = area_cycle[index % len(area_cycle)]
        # Rooms of an area lie side by side in the area's frame, as in S3DIS.
        slot = index // len(area_cycle)
        room, segment, color = _room(S3DIS, variant, _scene_seed(seed, index), density, (12.0 * slot, 0.0, 0.0))
        number = per_area_type.get((area, room.room_type), 0) + 1
        per_area_type[(area, room.room_type)] = number
        folder = out / f"Area_{area}" / f"{room.room_type}_{number}"
        _save(folder, {"coord": room.coord, "color": color, "normal": room.normal,
                       "segment": segment.astype(np.int16)[:, None], "instance": room.instance.astype(np.int16)[:, None]})
        written.append(folder)
    return written


def _write_structured3d(out: Path, scenes: int, seed: int, density: float, variant: RoomVariant) -> list[Path]:
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
                rooms_in_scene, room_in_scene = randint(g, 1, 3), 0
            room, segment, color = _room(STRUCTURED3D, variant, _scene_seed(seed, index), density,
                                         (8.0 * room_in_scene, 0.0, 0.0))
            folder = out / split / f"scene_{scene_id:05d}" / f"room_{room_in_scene}"
            _save(folder, {"coord": room.coord, "color": color, "normal": room.normal,
                           "segment": segment.astype(np.int16)[:, None]})
            written.append(folder)
            room_in_scene += 1
            index += 1
    return written


def _scene_seed(seed: int, *keys: int) -> int:
    """A seed for the item ``keys`` of a dataset generated from ``seed``."""
    return int(np.random.SeedSequence((seed, *keys)).generate_state(1)[0])


_WRITERS = {"scannet": _write_scannet, "s3dis": _write_s3dis, "structured3d": _write_structured3d}


def write_synthetic_rooms(out: str | PathLike, flavor: str, scenes: int, *, seed: int = 0,
                          density: float = 1.0, variant: RoomVariant | None = None) -> list[Path]:
    """Write ``scenes`` synthetic rooms of ``flavor`` under ``out`` in the dataset's layout (split
    folders as the real dataset has them) and return the scene folders written.

    The result loads with :class:`ppt.data.ScanNet`, :class:`ppt.data.S3DIS` or
    :class:`ppt.data.Structured3D`. Deterministic in ``seed``; ``density`` scales the capture
    flavor's points per square metre; ``variant`` (:class:`~ppt.data.scenes.rooms.variants.RoomVariant`)
    departs from the flavor in a controlled way: rooms and capture of another flavor, a kind
    relabelled, colours permuted or absent (ScanNet's ``segment200.npy`` keeps the standard
    ScanNet200 labelling).
    """
    layout = resolve_flavor(flavor)
    if scenes < 1:
        raise ValueError(f"write_synthetic_rooms: scenes must be >= 1, got {scenes}")
    variant = RoomVariant() if variant is None else variant
    try:
        variant.check(layout)
    except ValueError as error:
        raise ValueError(f"write_synthetic_rooms: {error}") from None
    return _WRITERS[layout.name](Path(out), scenes, seed, density, variant)
