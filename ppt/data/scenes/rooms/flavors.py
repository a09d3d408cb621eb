"""Room flavors: how synthetic rooms imitate ScanNet, S3DIS or Structured3D (labels, geometry,
the look of the capture), and the base colours of each kind of object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ppt.data.scenes.s3dis import S3DIS_CLASSES
from ppt.data.scenes.scannet import SCANNET_CLASSES
from ppt.data.scenes.scannet200 import SCANNET200_CLASSES
from ppt.data.scenes.structured3d import STRUCTURED3D_CLASSES

__all__ = ["RoomFlavor", "FLAVORS", "SCANNET", "S3DIS", "STRUCTURED3D", "PALETTE", "SCANNET200_LABELS", "resolve_flavor"]


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

# The ScanNet rooms' second labelling, ScanNet200 (segment200.npy): every kind a ScanNet room holds
# gets the ScanNet200 class its real counterpart has. Where a ScanNet-20 class exists, the class is
# the same object (sofa is ScanNet200's "couch", otherfurniture its "furniture"), so the two label
# files agree; kinds ScanNet-20 ignores (ceiling, pillows, lamps, televisions, mirrors, clutter) are
# labelled here, as in the real ScanNet200.
SCANNET200_LABELS: dict[str, str] = {
    **_identity_labels(set(SCANNET.labels) & set(SCANNET200_CLASSES)),
    "sofa": "couch", "otherfurniture": "furniture", "ceiling": "ceiling", "pillow": "pillow", "lamp": "lamp",
    "television": "tv", "mirror": "mirror", "nightstand": "nightstand", "dresser": "dresser", "clutter": "object",
}

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
PALETTE: dict[str, tuple[tuple[int, int, int], ...]] = {
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


def resolve_flavor(flavor: str | RoomFlavor) -> RoomFlavor:
    if isinstance(flavor, RoomFlavor):
        return flavor
    if flavor not in FLAVORS:
        raise ValueError(f"unknown room flavor {flavor!r}; expected one of {sorted(FLAVORS)}")
    return FLAVORS[flavor]
