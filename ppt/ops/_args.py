"""Validation of the Python scalars that op wrappers and layers pass to the kernels.

``int(5.7)`` or ``float("0.1")`` would silently turn a wrong argument into a plausible one, so sizes
and counts must be integers (``int``, a NumPy integer or an integer 0-d tensor, never ``bool`` or a
float) and real-valued settings must be real numbers. Range checks that the kernels make on every
call (``k <= N``, ``voxel_size > 0``) stay in C++, where direct ``torch.ops.ppt`` calls meet them too;
the ones here cover what only Python sees. Checks of Python scalars do not break ``torch.compile``
graphs; ``torch.SymInt`` / ``torch.SymFloat`` pass through unchanged.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence

import torch


def _describe(value) -> str:
    return f"{type(value).__name__} {value!r}"


def as_int(value, name: str, op: str, minimum: int | None = None) -> int:
    """``value`` as an ``int``; TypeError unless it is an integer, ValueError below ``minimum``."""
    if isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int, got bool {value!r}")
    if isinstance(value, (int, torch.SymInt)):  # (dynamo traces a SymInt as an int)
        result = value
    else:
        try:
            result = operator.index(value)
        except TypeError:
            raise TypeError(f"{op}: {name} must be an int, got {_describe(value)}") from None
    if minimum is not None and result < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {result}")
    return result


def as_int_tuple(value, size: int, name: str, op: str, minimum: int | None = None) -> list[int]:
    """An int or a sequence of ``size`` ints (one per spatial axis, x first), as a list of ``size``
    ints, each at least ``minimum``."""
    expected = f"an int or {size} ints ({', '.join('xyz'[:size])})" if size > 1 else "an int or 1 int (x)"
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != size:
            raise ValueError(f"{op}: {name} must be {expected}, got {value!r}")
        values = [as_int(v, name, op) for v in value]
    else:
        try:
            values = [as_int(value, name, op)] * size
        except TypeError:
            raise TypeError(f"{op}: {name} must be {expected}, got {_describe(value)}") from None
    if minimum is not None and any(v < minimum for v in values):
        raise ValueError(f"{op}: {name} entries must be >= {minimum}, got {values}")
    return values


def as_int_triple(value, name: str, op: str, minimum: int | None = None) -> list[int]:
    """An int or a sequence of 3 ints (x, y, z), as a list of 3 ints, each at least ``minimum``."""
    return as_int_tuple(value, 3, name, op, minimum)


def as_real(value, name: str, op: str, *, positive: bool = False) -> float:
    """``value`` as a ``float``; TypeError unless it is a real number (not ``bool`` or a string).

    With ``positive``, ValueError unless it is finite and > 0.
    """
    if isinstance(value, torch.SymFloat):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {_describe(value)}")
    result = float(value)
    if positive and not (math.isfinite(result) and result > 0):
        raise ValueError(f"{op}: {name} must be a positive finite number, got {result}")
    return result


def as_fraction(value, name: str, op: str) -> float:
    """``value`` as a ``float`` in [0, 1] (a weight such as a running-average momentum)."""
    result = as_real(value, name, op)
    if not 0 <= result <= 1:
        raise ValueError(f"{op}: {name} must be in [0, 1], got {result}")
    return result


def as_bool(value, name: str, op: str) -> bool:
    """``value`` if it is a ``bool`` (``bool("False")`` or ``bool(2)`` would hide a mistake)."""
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a bool, got {_describe(value)}")
    return value
