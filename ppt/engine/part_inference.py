"""``ppt eval``'s table and ``ppt predict`` for part-segmentation checkpoints (task
``part-segmentation``): the official instance / class mIoU per category (computed by
:func:`ppt.engine.inference.evaluate_checkpoint`), and per-point part labels of object files
(ShapeNetPart ``.txt`` rows or ``.ply`` clouds) with a coloured PLY and PNG."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ppt.data.objects.shapenet_part import (SHAPENETPART_CATEGORIES, SHAPENETPART_PART_NAMES, SHAPENETPART_PARTS,
                                            SHAPENETPART_SYNSETS, PartBatch, pc_normalize)
from ppt.engine.metrics import PartIoU

if TYPE_CHECKING:
    from ppt.engine.inference import LoadedCheckpoint

__all__ = ["format_part_table", "read_part_cloud", "part_colours", "predict_part_file"]


def format_part_table(metric: PartIoU) -> str:
    """Per-category mean shape IoU and shape counts, then instance and class mIoU."""
    summary = metric.summary()
    width = max(len(name) for name in metric.category_names)
    lines = [f"{'category':<{width}}  {'mIoU':>7}  {'shapes':>7}"]
    for index, name in enumerate(metric.category_names):
        shapes = int(metric.shapes[index])
        value = f"{float(metric.sums[index]) / shapes:7.4f}" if shapes else f"{'-':>7}"
        lines.append(f"{name:<{width}}  {value}  {shapes:>7}")
    lines.append(f"instance mIoU {summary['instance_mIoU']:.4f}   class mIoU {summary['class_mIoU']:.4f}   "
                 f"point accuracy {summary['allAcc']:.4f}   ({summary['count']} shapes; categories without shapes "
                 "are left out of the class mean)")
    return "\n".join(lines)


def _category_index(category: str | None, path: Path) -> int:
    if category is not None:
        lowered = [name.lower() for name in SHAPENETPART_CATEGORIES]
        if category.lower() in lowered:
            return lowered.index(category.lower())
        if category in SHAPENETPART_SYNSETS:
            return SHAPENETPART_SYNSETS.index(category)
        raise ValueError(f"--category {category!r}: expected one of {', '.join(SHAPENETPART_CATEGORIES)} "
                         "(or its ShapeNet synset)")
    if path.parent.name in SHAPENETPART_SYNSETS:  # a file of the dataset's layout names its category by folder
        return SHAPENETPART_SYNSETS.index(path.parent.name)
    raise ValueError(f"{path}: the object's category is needed (part segmentation is conditioned on it); "
                     f"give --category, one of {', '.join(SHAPENETPART_CATEGORIES)}")


def read_part_cloud(path: str | PathLike, category: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """An object as ``(points (N, 3), normals (N, 3) or None, parts (N,) or None, category)``:
    a ShapeNetPart ``.txt`` (rows ``x y z nx ny nz [part]``; the category from its synset folder
    unless ``category`` is given) or a ``.ply`` (``x, y, z``; ``nx, ny, nz`` and an integer
    ``label`` / ``part`` used when present; ``category`` required)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    index = _category_index(category, path)
    if path.suffix.lower() == ".txt":
        data = np.loadtxt(path, dtype=np.float32, ndmin=2)
        if data.shape[1] not in (6, 7) or data.shape[0] == 0:
            raise ValueError(f"{path}: expected rows 'x y z nx ny nz [part]', got an array of shape {data.shape}")
        parts = data[:, 6].astype(np.int64) if data.shape[1] == 7 else None
        return data[:, :3], data[:, 3:6], parts, index
    if path.suffix.lower() != ".ply":
        raise ValueError(f"{path}: expected a ShapeNetPart .txt file or a .ply file")
    from ppt.engine.inference import PREDICTION_COMMENT, read_point_ply

    ply, vertices = read_point_ply(path)
    if any(comment.startswith(PREDICTION_COMMENT) for comment in ply.comments):
        raise ValueError(f"{path} is an output of ppt predict; predict the original object instead")
    names = set(vertices.data.dtype.names)

    def columns(*keys: str) -> np.ndarray:
        return np.stack([np.asarray(vertices[key], dtype=np.float32) for key in keys], 1)

    normals = columns("nx", "ny", "nz") if {"nx", "ny", "nz"} <= names else None
    label = next((key for key in ("label", "part") if key in names), None)
    parts = np.asarray(vertices[label], dtype=np.int64) if label else None
    return columns("x", "y", "z"), normals, parts, index


def part_colours() -> np.ndarray:
    """``(50, 3)`` uint8: each category's parts get distinct colours (the first ones of the palette)."""
    from ppt.engine.inference import palette

    colours = np.zeros((len(SHAPENETPART_PART_NAMES), 3), dtype=np.uint8)
    base = palette(max(len(parts) for parts in SHAPENETPART_PARTS.values()))
    for parts in SHAPENETPART_PARTS.values():
        colours[list(parts)] = base[:len(parts)]
    return colours


def _plot_parts(path: Path, points: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None,
                colours: np.ndarray, title: str) -> None:
    """Prediction (and ground truth, when labelled) as 3-D scatter plots, ``y`` up as in ShapeNet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("prediction", prediction)] + ([("ground truth", truth)] if truth is not None else [])
    figure = plt.figure(figsize=(5 * len(panels) + 1.5, 5))
    for column, (name, labels) in enumerate(panels):
        axis = figure.add_subplot(1, len(panels), column + 1, projection="3d")
        axis.scatter(points[:, 0], points[:, 2], points[:, 1], c=colours[labels] / 255.0, s=2, linewidths=0)
        axis.set_title(f"{title}: {name}")
        axis.set_box_aspect(np.ptp(points[:, [0, 2, 1]], axis=0) + 1e-6)
        axis.view_init(elev=20, azim=-60)
        axis.set_axis_off()
    shown = sorted(set(prediction.tolist()) | (set(truth.tolist()) if truth is not None else set()))
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[part] / 255.0,
                          label=SHAPENETPART_PART_NAMES[part]) for part in shown]
    figure.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def predict_part_file(loaded: LoadedCheckpoint, path: str | PathLike, out: str | PathLike, *,
                      category: str | None = None) -> dict:
    """Predict the part of every point of an object file (:func:`read_part_cloud`), restricted to its
    category's parts as the official evaluation; write ``<name>.labels.npy`` (int64 global part id
    per point), ``<name>.ply`` (coloured by part, with a ``prediction`` property) and ``<name>.png``."""
    from ppt.engine.inference import write_ply

    task = loaded.task
    path = Path(path)
    points, normals, truth, index = read_part_cloud(path, category)
    if normals is None and task.model_takes_normals:
        raise ValueError(f"{path}: the model reads normals and the file has none (nx, ny, nz)")
    count = points.shape[0]
    xyz = pc_normalize(torch.from_numpy(points))
    batch = PartBatch(xyz[None], torch.from_numpy(normals if normals is not None else np.zeros_like(points))[None],
                      torch.tensor([index]), torch.full((1, count), -1, dtype=torch.int64)).to(loaded.device)
    metric = task.new_metric(loaded.device)
    with torch.no_grad(), loaded.precision.autocast():
        scores = task.scores(loaded.model, batch)
    prediction = metric.restrict(scores, batch.categories)[0].cpu().numpy().astype(np.int64)
    name = path.stem
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    colours = part_colours()
    category_name = SHAPENETPART_CATEGORIES[index]
    np.save(out / f"{name}.labels.npy", prediction)
    write_ply(out / f"{name}.ply", points, prediction, colours,
              f"{loaded.path.name} ({loaded.meta.provenance.get('recipe') or loaded.config.task}, step "
              f"{loaded.meta.step}), {category_name} parts, of {path.name}")
    allowed = SHAPENETPART_PARTS[category_name]
    labelled = truth is not None and bool(((truth >= allowed[0]) & (truth <= allowed[-1])).all())
    _plot_parts(out / f"{name}.png", points, prediction, truth if labelled else None, colours, category_name)
    result = {"name": name, "category": category_name, "points": count,
              "files": [str(out / f"{name}{suffix}") for suffix in (".labels.npy", ".ply", ".png")],
              "note": None if truth is None or labelled else "its labels are not parts of this category: not scored"}
    if labelled:
        result["IoU"] = float(metric.shape_ious(torch.from_numpy(prediction)[None], torch.from_numpy(truth)[None],
                                                torch.tensor([index]))[0])
    return result
