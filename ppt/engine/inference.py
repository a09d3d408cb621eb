"""Using a trained checkpoint: rebuild its model, evaluate it on whole scenes or objects, and
predict labels for point clouds on disk (``.npy`` scene folders or ``.ply`` files)."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ppt.data import SceneSample, read_scene_folder
from ppt.engine.checkpoint import CheckpointError, CheckpointMeta, read_meta
from ppt.engine.config import RecipeConfig, config_from_dict
from ppt.engine.metrics import ConfusionMatrix
from ppt.engine.tasks import SegmentationTask, Task, create_task
from ppt.engine.trainer import Precision, resolve_device

__all__ = ["LoadedCheckpoint", "load_checkpoint", "evaluate_checkpoint", "read_point_cloud", "predict_file",
           "format_table"]


@dataclass
class LoadedCheckpoint:
    path: Path
    meta: CheckpointMeta
    config: RecipeConfig
    task: Task
    model: nn.Module
    device: torch.device
    precision: Precision


def load_checkpoint(path: str | PathLike, *, data_root: str | None = None, device: str = "auto") -> LoadedCheckpoint:
    """The model of a training checkpoint with its recipe; ``data_root`` replaces the data root of
    a single-dataset recipe."""
    from ppt.models import load_weights

    path = Path(path)
    meta = read_meta(path)
    config = config_from_dict(meta.config, f"{path} metadata")
    if data_root is not None:
        if len(config.data.sources) != 1:
            raise ValueError(f"--data sets the root of a single-dataset recipe; {path} trained on "
                             f"{', '.join(config.data.sources)}")
        next(iter(config.data.sources.values())).root = str(data_root)
    config.model.weights = None  # the checkpoint holds every weight
    config.train.device = device
    task = create_task(config)
    if task.class_names != meta.class_names:
        raise CheckpointError(f"{path}: the class names in its metadata differ from its recipe's datasets")
    model = task.build_model()
    load_weights(model, path, format="ppt", strict=True)
    resolved = resolve_device(device)
    return LoadedCheckpoint(path, meta, config, task, model.to(resolved).eval(), resolved,
                            Precision(config.train.amp, resolved))


def evaluate_checkpoint(loaded: LoadedCheckpoint, *, progress: bool = True) -> dict[str, ConfusionMatrix]:
    """Confusion matrices per data source on its validation split: whole scenes by fragment voting
    for segmentation, every test object for classification."""
    from tqdm import tqdm

    task, results = loaded.task, {}
    for name, source in loaded.config.data.sources.items():
        confusion = ConfusionMatrix(len(task.class_names[name]), device=loaded.device)
        if isinstance(task, SegmentationTask):
            dataset = task.dataset(source, source.val_split, train=False)
            dataset.transform = None  # whole scenes as stored; predict_scene samples them
            for index in tqdm(range(len(dataset)), desc=f"eval {name}", disable=not progress):
                sample = dataset[index]
                scores = task.predict_scene(loaded.model, sample, device=loaded.device,
                                            autocast=loaded.precision.autocast)
                confusion.update(scores.argmax(1), sample.segment.to(loaded.device))
        else:
            dataset = task.dataset(source, source.val_split, train=False)
            loader = torch.utils.data.DataLoader(dataset, batch_size=loaded.config.data.val_batch_size,
                                                 collate_fn=task.collate)
            with torch.no_grad():
                for batch in tqdm(loader, desc=f"eval {name}", disable=not progress):
                    with loaded.precision.autocast():
                        task.evaluate_batch(loaded.model, batch.to(loaded.device), confusion)
        results[name] = confusion
    return results


def format_table(confusion: ConfusionMatrix, class_names: list[str], segmentation: bool) -> str:
    """Per-class IoU and accuracy (segmentation) or accuracy (classification), then the means."""
    iou, accuracy = confusion.per_class()
    counts = confusion.matrix.sum(1).tolist()
    width = max(12, max(len(name) for name in class_names))
    header = f"{'class':<{width}}  {'IoU':>7}  {'Acc':>7}  {'points':>9}" if segmentation else \
        f"{'class':<{width}}  {'Acc':>7}  {'objects':>7}"
    lines = [header]

    def cell(value: float) -> str:
        return f"{value:7.4f}" if not np.isnan(value) else f"{'-':>7}"

    for i, name in enumerate(class_names):
        lines.append(f"{name:<{width}}  {cell(float(iou[i]))}  {cell(float(accuracy[i]))}  {counts[i]:>9}" if segmentation
                     else f"{name:<{width}}  {cell(float(accuracy[i]))}  {counts[i]:>7}")
    summary = confusion.summary(class_names)
    if segmentation:
        lines.append(f"mIoU {summary['mIoU']:.4f}   mAcc {summary['mAcc']:.4f}   allAcc {summary['allAcc']:.4f}   "
                     f"({summary['count']} labelled points; classes absent from the data are left out)")
    else:
        lines.append(f"overall accuracy {summary['allAcc']:.4f}   mean class accuracy {summary['mAcc']:.4f}   "
                     f"({summary['count']} objects)")
    return "\n".join(lines)


def _estimate_normals(coord: torch.Tensor, neighbours: int = 16) -> torch.Tensor:
    """Unit normals by PCA of each point's neighbourhood, oriented towards the cloud's centre
    (inward for rooms: floors up, walls into the room)."""
    from ppt.ops import knn

    k = min(neighbours, coord.shape[0])
    _, index = knn(coord[None], coord[None], k)
    local = coord[index[0]] - coord[index[0]].mean(1, keepdim=True)
    _, vectors = torch.linalg.eigh(local.transpose(1, 2) @ local)
    normal = vectors[:, :, 0]
    inward = coord.mean(0) - coord
    return torch.where(((normal * inward).sum(1) < 0)[:, None], -normal, normal).float()


def read_point_cloud(path: str | PathLike, *, num_classes: int, label_files: tuple[str, ...] = ("segment.npy",),
                     condition: str = "", need_normals: bool = False) -> tuple[SceneSample, str | None]:
    """A scene folder of ``.npy`` files (Pointcept layout) or a ``.ply`` point cloud as a sample,
    with a note when something had to be filled in. PLY vertices need ``x, y, z``; ``red, green,
    blue`` (0-255), ``nx, ny, nz`` and an integer ``label`` / ``class`` / ``segment`` are used when present."""
    path = Path(path)
    if path.is_dir():
        sample = read_scene_folder(path, name=path.name, condition=condition, num_classes=num_classes,
                                   label_files=label_files)
        note = None
        if need_normals and sample.normal is None:
            sample, note = sample.replace(normal=_estimate_normals(sample.coord)), "no normal.npy: normals estimated by PCA"
        return sample, note
    if path.suffix.lower() != ".ply":
        raise ValueError(f"{path}: expected a scene folder of .npy files or a .ply file")
    from plyfile import PlyData

    try:
        vertices = PlyData.read(str(path))["vertex"]
    except Exception as error:
        raise ValueError(f"{path}: not a readable PLY point cloud ({error})") from None
    names = vertices.data.dtype.names
    if not {"x", "y", "z"} <= set(names):
        raise ValueError(f"{path}: PLY vertices need x, y, z properties, found {names}")

    def columns(*keys: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(vertices[key], dtype=np.float32) for key in keys], 1))

    coord = columns("x", "y", "z")
    notes = []
    if {"red", "green", "blue"} <= set(names):
        color = columns("red", "green", "blue")
    else:
        color = torch.full_like(coord, 127.5)
        notes.append("no colours: grey used")
    normal = columns("nx", "ny", "nz") if {"nx", "ny", "nz"} <= set(names) else None
    if normal is None and need_normals:
        normal = _estimate_normals(coord)
        notes.append("no normals: estimated by PCA")
    label_key = next((key for key in ("label", "class", "segment") if key in names), None)
    segment = (torch.from_numpy(np.asarray(vertices[label_key], dtype=np.int64)) if label_key
               else torch.full((coord.shape[0],), -1, dtype=torch.int64))
    segment = torch.where((segment >= 0) & (segment < num_classes), segment, -1)
    sample = SceneSample(coord=coord, color=color, normal=normal, segment=segment,
                         instance=torch.full_like(segment, -1), name=path.stem, condition=condition)
    return sample, "; ".join(notes) or None


def palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 distinct colours."""
    import matplotlib

    colours = [matplotlib.colormaps["tab20"](i) for i in range(20)] + [matplotlib.colormaps["tab20b"](i) for i in range(20)]
    return (np.asarray([colours[i % len(colours)][:3] for i in range(num_classes)]) * 255).round().astype(np.uint8)


def write_ply(path: Path, coord: np.ndarray, labels: np.ndarray, colours: np.ndarray) -> None:
    from plyfile import PlyData, PlyElement

    rgb = colours[labels]
    vertex = np.empty(coord.shape[0], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                             ("blue", "u1"), ("label", "i4")])
    vertex["x"], vertex["y"], vertex["z"] = coord[:, 0], coord[:, 1], coord[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    vertex["label"] = labels
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


def plot_top_down(path: Path, coord: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None,
                  class_names: list[str], colours: np.ndarray) -> None:
    """Prediction (and ground truth, when labelled) seen from above; the top 15% of the height
    (ceilings) is left out so the floor plan shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = coord[:, 2]
    keep = z <= z.min() + 0.85 * (z.max() - z.min()) if len(z) else np.zeros(0, bool)
    order = np.argsort(z[keep], kind="stable")
    xy = coord[keep][order, :2]
    panels = [("prediction", prediction)] + ([("ground truth", truth)] if truth is not None and (truth >= 0).any() else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 6), squeeze=False)
    grey = np.array([200, 200, 200], dtype=np.uint8)
    for axis, (title, labels) in zip(axes[0], panels):
        shown = labels[keep][order]
        rgb = np.where((shown >= 0)[:, None], colours[shown.clip(min=0)], grey) / 255.0
        axis.scatter(xy[:, 0], xy[:, 1], c=rgb, s=0.5, linewidths=0)
        axis.set_title(title)
        axis.set_aspect("equal")
        axis.axis("off")
    present = sorted(set(prediction.tolist()) | (set(truth[truth >= 0].tolist()) if truth is not None else set()))
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[c] / 255.0, label=class_names[c])
               for c in present]
    figure.legend(handles=handles, loc="lower center", ncol=min(6, max(1, len(handles))), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def predict_file(loaded: LoadedCheckpoint, path: str | PathLike, out: str | PathLike) -> dict:
    """Predict every point of a scene folder or ``.ply`` file; write ``<name>.labels.npy`` (int64
    class per point), ``<name>.ply`` (points coloured by class, with a ``label`` property) and
    ``<name>.png`` (top-down view, next to the ground truth when the input is labelled)."""
    task = loaded.task
    if not isinstance(task, SegmentationTask):
        raise ValueError(f"ppt predict handles scene segmentation checkpoints; {loaded.path} is a {loaded.config.task} "
                         "checkpoint")
    source_name, source = next(iter(loaded.config.data.sources.items()))
    dataset_class = task.dataset_class(source)
    class_names = task.class_names[source_name]
    sample, note = read_point_cloud(path, num_classes=len(class_names), label_files=dataset_class.label_files,
                                    condition=dataset_class.condition,
                                    need_normals="normal" in loaded.config.data.feat_keys)
    scores = task.predict_scene(loaded.model, sample, device=loaded.device, autocast=loaded.precision.autocast)
    prediction = scores.argmax(1).cpu().numpy().astype(np.int64)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = sample.name
    coord = sample.coord.numpy()
    colours = palette(len(class_names))
    np.save(out / f"{name}.labels.npy", prediction)
    write_ply(out / f"{name}.ply", coord, prediction, colours)
    truth = sample.segment.numpy()
    plot_top_down(out / f"{name}.png", coord, prediction, truth, class_names, colours)
    result = {"name": name, "points": int(coord.shape[0]), "files": [str(out / f"{name}{s}") for s in
                                                                       (".labels.npy", ".ply", ".png")], "note": note}
    if (truth >= 0).any():
        confusion = ConfusionMatrix(len(class_names))
        confusion.update(torch.from_numpy(prediction), torch.from_numpy(truth))
        result["mIoU"] = confusion.summary()["mIoU"]
    return result
