"""The ScanNet data-efficient benchmark's inputs (Hou et al., "Exploring Data-Efficient 3D Scene
Understanding with Contrastive Scene Contexts", CVPR 2021), in its official file formats:

- **limited reconstructions**: ``tasks/scenes/<P>.txt``, the names of the training scenes a
  model may use (``P`` = 1, 5, 10, 20 % of them), one per line (Pointcept reads them with
  ``np.loadtxt(lr_file, dtype=str)``);
- **limited annotations**: ``tasks/points/points<K>``, a ``torch.save``'d dict mapping every
  training scene's name to a 1-D int64 NumPy array of the ``K`` = 20, 50, 100, 200 point
  indices whose labels may be used (rows of the scene's ``coord.npy``, i.e. vertices of
  ``_vh_clean_2.ply``; Pointcept reads them with ``torch.load(la_file)``).

``tasks/`` lies in the dataset root, where Pointcept's README copies the benchmark's download. This
module reads and writes both formats (points files with ``torch.load(weights_only=True)``, which
admits NumPy arrays and nothing that runs code) and generates them, seeded, for any scene dataset
(:func:`write_data_efficient_lists`, ``ppt data data-efficient``).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "SCENE_PERCENTAGES", "POINT_COUNTS", "LIMITED_SETTING", "available_limited", "scene_list_path", "labelled_points_path", "resolve_limited",
    "read_scene_list", "write_scene_list", "read_labelled_points", "write_labelled_points", "sample_scene_list",
    "sample_labelled_points", "write_data_efficient_lists",
]

SCENE_PERCENTAGES = (1, 5, 10, 20)
"""The benchmark's limited reconstructions: percentages of the training scenes."""
POINT_COUNTS = (20, 50, 100, 200)
"""The benchmark's limited annotations: labelled points per training scene."""

LIMITED_SETTING = re.compile(r"^(lr|la)(\d+)$")
"""A setting of the benchmark: ``lr<percent>`` or ``la<points>``."""


def scene_list_path(tasks: str | PathLike, percent: int) -> Path:
    """``tasks/scenes/<percent>.txt``."""
    return Path(tasks) / "scenes" / f"{percent}.txt"


def labelled_points_path(tasks: str | PathLike, count: int) -> Path:
    """``tasks/points/points<count>``."""
    return Path(tasks) / "points" / f"points{count}"


def resolve_limited(setting: str, tasks: str | PathLike) -> tuple[str, Path]:
    """The kind (``"lr"`` limited reconstructions or ``"la"`` limited annotations) and file of a
    setting such as ``"lr5"`` (``tasks/scenes/5.txt``) or ``"la20"`` (``tasks/points/points20``)."""
    match = LIMITED_SETTING.match(setting)
    if match is None:
        raise ValueError(f"limited must be lr<percent> (limited reconstructions, e.g. lr1, lr5, lr10, lr20) or "
                         f"la<points> (limited annotations, e.g. la20, la50, la100, la200), got {setting!r}")
    kind, number = match.group(1), int(match.group(2))
    return kind, scene_list_path(tasks, number) if kind == "lr" else labelled_points_path(tasks, number)


def available_limited(tasks: str | PathLike) -> list[str]:
    """The settings whose files ``tasks`` holds (``lr1``, ``lr5``, ..., ``la20``, ...), sorted by kind and number."""
    tasks = Path(tasks)
    found = [("lr", int(path.stem)) for path in tasks.glob("scenes/*.txt") if path.stem.isdigit()]
    found += [("la", int(path.name[6:])) for path in tasks.glob("points/points*") if path.name[6:].isdigit()]
    return [f"{kind}{number}" for kind, number in sorted(found, key=lambda item: (item[0] != "lr", item[1]))]


def read_scene_list(path: str | PathLike) -> list[str]:
    """The scene names of a limited-reconstruction list (one per line; blank lines skipped).

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: the list is empty or names a scene twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scene list {path} does not exist (limited reconstructions: tasks/scenes/<P>.txt, one "
                                "scene name per line)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"scene list {path}: no scene names")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"scene list {path}: names {repeated[0]!r} more than once")
    return names


def write_scene_list(path: str | PathLike, names: Iterable[str]) -> Path:
    """Write a limited-reconstruction list: one scene name per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in names))
    return path


def _numpy_globals() -> list:
    """What a torch.save'd dict of NumPy arrays refers to, for ``torch.load(weights_only=True)``:
    the array reconstructor under both module names (NumPy 1.x files say ``numpy.core``, NumPy 2
    writes ``numpy._core``), the array and dtype types."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    # integer dtypes, and the others so that a file of the wrong dtype is reported as such
    dtypes = {type(np.dtype(code)) for code in ("i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "f8", "f4", "f2", "?")}
    return [*((reconstruct, f"{package}.multiarray._reconstruct") for package in ("numpy.core", "numpy._core")),
            np.ndarray, np.dtype, *dtypes]


def read_labelled_points(path: str | PathLike) -> dict[str, np.ndarray]:
    """The per-scene point indices of a limited-annotation file: ``{scene name: (K,) int64}``.

    The file is a ``torch.save``'d dict of scene name to 1-D integer indices (NumPy arrays as the
    benchmark ships them, tensors or lists also accepted), read with ``torch.load(weights_only=True)``
    so that it can hold nothing but data.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable torch file of that shape (names the first bad entry), or it
            names objects other than arrays and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labelled points file {path} does not exist (limited annotations: "
                                "tasks/points/points<K>, a torch.save'd dict of scene name -> point indices)")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        # torch's message opens with advice to load unsafely; the line that names the refused object says why
        lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        reason = next((line for line in lines if "GLOBAL" in line), lines[0])
        raise ValueError(f"labelled points file {path}: not a torch file of scene name -> point indices that "
                         f"torch.load(weights_only=True) reads ({reason})") from None
    if not isinstance(content, Mapping) or not content:
        raise ValueError(f"labelled points file {path}: expected a non-empty dict of scene name -> point indices, got "
                         f"{type(content).__name__}")
    points = {}
    for name, indices in content.items():
        array = indices.numpy() if isinstance(indices, torch.Tensor) else np.asarray(indices)
        if not isinstance(name, str) or array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"labelled points file {path}: entry {name!r} must map a scene name to 1-D integer point "
                             f"indices, got {array.dtype} of shape {array.shape}")
        if array.size and array.min() < 0:
            raise ValueError(f"labelled points file {path}: scene {name!r} has negative point index {array.min()}")
        points[name] = array.astype(np.int64)
    return points


def write_labelled_points(path: str | PathLike, points: Mapping[str, np.ndarray]) -> Path:
    """Write a limited-annotation file as the benchmark ships them: ``torch.save`` of a dict of
    scene name to a 1-D int64 NumPy array of point indices."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({name: np.asarray(indices, dtype=np.int64) for name, indices in points.items()}, path)
    return path


def _scene_rng(seed: int, name: str, purpose: int) -> np.random.Generator:
    """A generator for one scene, fixed by ``(seed, scene name)``: the same scene gets the same
    draw whichever other scenes the set holds."""
    return np.random.default_rng([seed, purpose, *name.encode()])


def sample_scene_list(names: Sequence[str], percent: int, *, seed: int = 0, minimum: int = 1) -> list[str]:
    """``percent`` % of ``names`` (rounded, at least ``minimum``, at most all), drawn with ``seed``,
    in their given order. The lists of one seed are nested: a smaller percentage takes a prefix of
    the same permutation."""
    if not 0 < percent <= 100:
        raise ValueError(f"sample_scene_list: percent must be in (0, 100], got {percent}")
    if not names:
        raise ValueError("sample_scene_list: no scenes")
    if minimum < 1:
        raise ValueError(f"sample_scene_list: minimum must be >= 1, got {minimum}")
    count = min(len(names), max(minimum, round(len(names) * percent / 100)))
    order = np.random.default_rng([seed, 0]).permutation(len(names))
    return [names[i] for i in sorted(order[:count])]


def sample_labelled_points(name: str, segment: np.ndarray, count: int, *, seed: int = 0) -> np.ndarray:
    """``count`` indices of points of scene ``name`` that carry a label (``segment >= 0``), drawn
    uniformly without replacement with ``seed`` (all of them when the scene has fewer), sorted.
    The draws of one seed are nested: a smaller count takes a prefix of the same permutation."""
    if count < 1:
        raise ValueError(f"sample_labelled_points: count must be >= 1, got {count}")
    candidates = np.flatnonzero(np.asarray(segment) >= 0)
    order = _scene_rng(seed, name, 1).permutation(candidates.size)
    return np.sort(candidates[order[:count]]).astype(np.int64)


def write_data_efficient_lists(dataset, tasks: str | PathLike, *, seed: int = 0,
                               percentages: Sequence[int] = SCENE_PERCENTAGES, counts: Sequence[int] = POINT_COUNTS,
                               min_scenes: int = 1) -> list[Path]:
    """Write the benchmark's lists over the scenes of ``dataset`` (a
    :class:`~ppt.data.SceneDataset`, normally its training split) into the folder ``tasks``:
    ``scenes/<P>.txt`` for each of ``percentages`` (at least ``min_scenes`` scenes each) and
    ``points/points<K>`` for each of ``counts`` (points drawn among each scene's labelled points).
    Deterministic in ``seed``; returns the files written."""
    names = [dataset.scene_name(path) for path in dataset.scene_paths]
    written = [write_scene_list(scene_list_path(tasks, percent),
                                sample_scene_list(names, percent, seed=seed, minimum=min_scenes))
               for percent in percentages]
    if counts:
        # labels as stored (no limited annotations applied): the points are drawn among them
        segments = {name: dataset.load(index).segment.numpy() for index, name in enumerate(names)}
        for count in counts:
            written.append(write_labelled_points(labelled_points_path(tasks, count), {
                name: sample_labelled_points(name, segment, count, seed=seed) for name, segment in segments.items()}))
    return written

