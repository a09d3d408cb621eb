"""Controlled departures of a written dataset from its flavor, for experiments in which one
mechanism must matter (docs/data.md "Controlled variants"):

* ``capture``: generate the rooms and their capture of another flavor, written in this layout with
  this label set (two datasets of the same rooms and sensor that differ only in what follows);
* ``relabel``: object kinds labelled as another class of the layout's label set, a labelling
  *convention* (``cabinet=otherfurniture``: the dataset files cabinets under otherfurniture);
* ``colors``: ``permute`` (each point's RGB rotated to GBR, a different colour response) or
  ``none`` (all zero: a capture without colour); ``keep`` leaves them.

Density, the remaining capture knob, is the writers' ``density``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ppt.data.scenes.rooms.flavors import FLAVORS, PALETTE, RoomFlavor, resolve_flavor

__all__ = ["RoomVariant", "COLOR_MODES", "parse_relabel"]

COLOR_MODES = ("keep", "permute", "none")
KINDS = frozenset(PALETTE) | {"glass"}
"""Every object kind a room can hold."""


def parse_relabel(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["cabinet=otherfurniture", ...]`` -> ``{"cabinet": "otherfurniture"}``."""
    pairs = {}
    for item in items:
        kind, sep, name = item.partition("=")
        if not sep or not kind.strip() or not name.strip():
            raise ValueError(f"relabel: expected KIND=CLASS, got {item!r}")
        pairs[kind.strip().replace("_", " ")] = name.strip()
    return pairs


@dataclass(frozen=True)
class RoomVariant:
    """How a dataset written in a flavor's layout departs from that flavor (module docstring).
    The default changes nothing."""

    capture: str | None = None
    relabel: Mapping[str, str] = field(default_factory=dict)
    colors: str = "keep"

    def capture_flavor(self, layout: RoomFlavor) -> RoomFlavor:
        """The flavor whose rooms and capture are generated."""
        return layout if self.capture is None else resolve_flavor(self.capture)

    def check(self, layout: RoomFlavor) -> None:
        """Raise ``ValueError`` naming the setting that does not fit ``layout``."""
        if self.capture is not None and self.capture not in FLAVORS:
            raise ValueError(f"capture must be one of {sorted(FLAVORS)}, got {self.capture!r}")
        if self.colors not in COLOR_MODES:
            raise ValueError(f"colors must be one of {COLOR_MODES}, got {self.colors!r}")
        for kind, name in self.relabel.items():
            if kind not in KINDS:
                raise ValueError(f"relabel: unknown object kind {kind!r}; expected one of {sorted(KINDS)}")
            if name not in layout.class_names:
                raise ValueError(f"relabel: {name!r} is not a class of {layout.name} ({', '.join(layout.class_names)})")

    def label_table(self, layout: RoomFlavor) -> dict[str, str]:
        """Object kind -> class name of ``layout``'s label set, with ``relabel`` applied."""
        return {**layout.labels, **self.relabel}

    def apply_colors(self, color: np.ndarray) -> np.ndarray:
        if self.colors == "permute":
            return np.ascontiguousarray(color[:, [1, 2, 0]])
        if self.colors == "none":
            return np.zeros_like(color)
        return color

    def describe(self) -> str:
        """A short summary for messages (empty for the default)."""
        parts = [f"capture {self.capture}"] if self.capture else []
        parts += [f"{kind} labelled {name}" for kind, name in self.relabel.items()]
        parts += [f"colours {self.colors}"] if self.colors != "keep" else []
        return ", ".join(parts)
