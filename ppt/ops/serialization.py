"""Serialization of grid coordinates along space-filling curves (Point Transformer V3).

Thin typed wrappers over ``torch.ops.ppt.serialization_{encode,decode}``; kernels live in
``csrc/point/serialization_*`` and share their formulas (``csrc/include/ppt/serialization.h``).
The codes are bit for bit Pointcept's (``pointcept/models/utils/serialization``): a code of depth
``D`` interleaves the ``D`` bits of each axis, level by level from the most significant, x above y
above z (z-order), or is the Hilbert index of Skilling's algorithm over the same layout
(``hilbert``); the ``-trans`` orders encode ``(y, x, z)``; the scene index sits above the
``3 * D`` coordinate bits (``batch << 3 * D | code``), so sorting codes sorts scene by scene.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ppt.ops._args import as_int

__all__ = ["ORDERS", "Serialization", "serialization_depth", "serialization_encode", "serialization_decode",
           "serialize"]

#: The orders PTv3 serializes along.
ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")


def _as_order(order, op: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"{op}: order must be one of {', '.join(map(repr, ORDERS))}, got {order!r}")
    return order


def serialization_encode(grid_coord: Tensor, batch: Tensor | None = None, depth: int = 16,
                         order: str = "z") -> Tensor:
    """Space-filling-curve code of each grid point.

    Args:
        grid_coord: ``(N, 3)`` int32/int64 grid coordinates in ``[0, 2**depth)``.
        batch: optional ``(N,)`` int32/int64 scene index of each point, in ``[0, 2**(63 - 3*depth))``.
        depth: bits per axis, in ``[0, 21]`` (Pointcept itself stops at 16).
        order: ``"z"``, ``"z-trans"``, ``"hilbert"`` or ``"hilbert-trans"``.

    Returns:
        ``(N,)`` int64 codes ``batch << 3*depth | curve_index``. Distinct points of a scene get
        distinct codes. Reading the value ranges costs one device synchronisation on CUDA.
    """
    depth = as_int(depth, "depth", "serialization_encode")
    return torch.ops.ppt.serialization_encode.default(grid_coord, batch, depth,
                                                      _as_order(order, "serialization_encode"))


def serialization_decode(code: Tensor, depth: int = 16, order: str = "z") -> tuple[Tensor, Tensor]:
    """Inverse of :func:`serialization_encode`.

    Args:
        code: ``(N,)`` int64, non-negative.
        depth, order: as given to the encoder (every order, the ``-trans`` ones included).

    Returns:
        ``grid_coord`` ``(N, 3)`` int64 and ``batch`` ``(N,)`` int64.
    """
    depth = as_int(depth, "depth", "serialization_decode")
    return torch.ops.ppt.serialization_decode.default(code, depth, _as_order(order, "serialization_decode"))


def serialization_depth(grid_coord: Tensor) -> int:
    """PTv3's adaptive depth: the bit length of ``max(grid_coord) + 1`` over all points and axes
    (0 for no points). A host synchronisation on CUDA."""
    if grid_coord.numel() == 0:
        return 0
    return int(grid_coord.max().item() + 1).bit_length()


class Serialization(NamedTuple):
    """The serializations of one point set, as PTv3 keeps them (one row per order)."""

    depth: int
    code: Tensor  #: ``(K, N)`` int64 codes
    order: Tensor  #: ``(K, N)`` int64: ``order[k]`` lists the points sorted by ``code[k]``
    inverse: Tensor  #: ``(K, N)`` int64: ``inverse[k][order[k]] = arange(N)``


def serialize(grid_coord: Tensor, batch: Tensor | None = None, orders: Sequence[str] = ORDERS,
              depth: int | None = None) -> Serialization:
    """Codes, sorting permutations and their inverses for each order (Pointcept's
    ``Point.serialization``, without its order shuffling: callers permute the rows).

    ``depth=None`` takes :func:`serialization_depth` of ``grid_coord``. The sort is stable, so
    points with equal codes (duplicate grid points) keep their input order; Pointcept's
    ``argsort`` leaves that order unspecified, and PTv3 inputs have no duplicates.
    """
    if isinstance(orders, str) or len(orders) == 0:
        raise ValueError(f"serialize: orders must be a non-empty sequence of {ORDERS}, got {orders!r}")
    if depth is None:
        depth = serialization_depth(grid_coord)
    code = torch.stack([serialization_encode(grid_coord, batch, depth, order) for order in orders])
    order = torch.sort(code, dim=1, stable=True).indices
    positions = torch.arange(code.shape[1], device=code.device).expand_as(order)
    inverse = torch.empty_like(order).scatter_(1, order, positions)
    return Serialization(depth, code, order, inverse)


# ---- fake kernels -------------------------------------------------------------------------------


@torch.library.register_fake("ppt::serialization_encode")
def _serialization_encode_fake(grid_coord, batch, depth, order):
    return grid_coord.new_empty((grid_coord.shape[0],), dtype=torch.long)


@torch.library.register_fake("ppt::serialization_decode")
def _serialization_decode_fake(code, depth, order):
    return code.new_empty((code.shape[0], 3)), code.new_empty((code.shape[0],))
