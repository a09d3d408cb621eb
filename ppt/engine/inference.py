"""Using a trained checkpoint: rebuild its model, evaluate it on whole scenes or objects, and
predict labels for point clouds on disk (``.npy`` scene folders or ``.ply`` files; for outdoor
checkpoints raw LiDAR sweeps: SemanticKITTI and nuScenes ``.bin`` files, Waymo frame folders)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ppt.data import SceneSample, read_scene_folder
from ppt.data.sweeps import SweepDataset
from ppt.engine.checkpoint import CheckpointError, CheckpointMeta, read_meta
from ppt.engine.config import RecipeConfig, config_from_dict
from ppt.engine.metrics import ConfusionMatrix, PartIoU
from ppt.engine.tasks import create_task
from ppt.engine.tasks.base import Task
from ppt.engine.tasks.segmentation import SegmentationTask
from ppt.engine.trainer import Precision, resolve_device

__all__ = ["LoadedCheckpoint", "load_checkpoint", "evaluate_checkpoint", "read_point_cloud", "read_point_ply", "choose_source",
           "predict_file", "format_table"]


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


def evaluate_checkpoint(loaded: LoadedCheckpoint, *, progress: bool = True
                        ) -> dict[str, ConfusionMatrix | PartIoU | dict[str, float]]:
    """Per data source on its validation split: confusion matrices of whole scenes by fragment voting
    for segmentation and of every test object for classification; for part segmentation the official
    instance / class mIoU (:class:`~ppt.engine.metrics.PartIoU`) over the objects as the official test loop
    draws them; for pre-training (tasks pretraining and unipre3d) the metrics its training run logs at
    each evaluation (Chamfer-L2 of masks drawn with seed 0; loss, PSNR and PSNR/novel)."""
    from tqdm import tqdm

    from ppt.engine.tasks.part_segmentation import PartSegmentationTask
    from ppt.engine.tasks.pretraining import PretrainingTask
    from ppt.engine.tasks.unipre3d import UniPre3DTask

    task, results = loaded.task, {}
    if isinstance(task, (PretrainingTask, UniPre3DTask)):
        datasets = {name: task.dataset(source, source.val_split, train=False)
                    for name, source in loaded.config.data.sources.items()}
        bar = (lambda loader: tqdm(loader, desc="eval", leave=False)) if progress else None
        # Point-MAE draws its masks from the global generator: a fixed seed makes two evaluations agree
        with torch.random.fork_rng(devices=[loaded.device] if loaded.device.type == "cuda" else []):
            torch.manual_seed(0)
            return task.evaluate(loaded.model, datasets, device=loaded.device, autocast=loaded.precision.autocast,
                                 progress=bar)
    for name, source in loaded.config.data.sources.items():
        if isinstance(task, PartSegmentationTask):
            metric = task.new_metric(loaded.device)
        else:
            metric = ConfusionMatrix(len(task.class_names[name]), device=loaded.device)
        if isinstance(task, SegmentationTask):
            dataset = task.dataset(source, source.val_split, train=False)
            dataset.transform = None  # whole scenes as stored; predict_scene samples them
            for index in tqdm(range(len(dataset)), desc=f"eval {name}", disable=not progress):
                sample = dataset[index]
                scores = task.predict_scene(loaded.model, sample, device=loaded.device,
                                            autocast=loaded.precision.autocast)
                metric.update(scores.argmax(1), sample.segment.to(loaded.device))
        else:  # classification: every test object; part segmentation: num_points drawn per object, as officially
            dataset = task.dataset(source, source.val_split, train=False)
            loader = torch.utils.data.DataLoader(dataset, batch_size=loaded.config.data.val_batch_size,
                                                 collate_fn=task.collate)
            with torch.no_grad():
                for batch in tqdm(loader, desc=f"eval {name}", disable=not progress):
                    with loaded.precision.autocast():
                        task.evaluate_batch(loaded.model, batch.to(loaded.device), metric)
        results[name] = metric
    return results


def format_table(confusion: ConfusionMatrix, class_names: list[str], segmentation: bool,
                 groups: Mapping[str, Sequence[str]] | None = None) -> str:
    """Per-class IoU and accuracy (segmentation) or accuracy (classification), then the means (and
    the mean IoU of each of ``groups``, e.g. ScanNet200's head / common / tail)."""
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
    summary = confusion.summary(class_names, groups)
    if segmentation:
        lines.append(f"mIoU {summary['mIoU']:.4f}   mAcc {summary['mAcc']:.4f}   allAcc {summary['allAcc']:.4f}   "
                     f"({summary['count']} labelled points; classes absent from the data are left out)")
        if groups:
            lines.append("   ".join(f"mIoU/{group} {summary[f'mIoU/{group}']:.4f}" for group in groups))
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


def read_point_ply(path: Path):
    """``(ply, vertices)`` of a PLY point cloud read with plyfile; a file it cannot read, or whose
    vertices lack ``x, y, z``, raises ValueError naming the file."""
    from plyfile import PlyData

    try:
        ply = PlyData.read(str(path))
        vertices = ply["vertex"]
    except Exception as error:
        raise ValueError(f"{path}: not a readable PLY point cloud ({error})") from None
    names = vertices.data.dtype.names
    if not {"x", "y", "z"} <= set(names):
        raise ValueError(f"{path}: PLY vertices need x, y, z properties, found {names}")
    return ply, vertices


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
    ply, vertices = read_point_ply(path)
    names = vertices.data.dtype.names
    label_key = next((key for key in ("label", "class", "segment") if key in names), None)
    if _is_ppt_prediction(ply, vertices, label_key):
        raise ValueError(f"{path} is an output of ppt predict: its colours are class colours and its classes "
                         "predictions, not a scan's colours and labels; predict the original scene instead")

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


PREDICTION_COMMENT = "ppt predict"
"""The first words of the header comment that marks a PLY written by :func:`write_ply`."""


def write_ply(path: Path, coord: np.ndarray, labels: np.ndarray, colours: np.ndarray, description: str) -> None:
    """The points coloured by predicted class, with the class in a ``prediction`` property (not
    ``label``, which readers take for ground truth) and a header comment
    ``ppt predict: <description>`` by which :func:`read_point_cloud` recognises the file."""
    from plyfile import PlyData, PlyElement

    rgb = colours[labels]
    vertex = np.empty(coord.shape[0], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                             ("blue", "u1"), ("prediction", "i4")])
    vertex["x"], vertex["y"], vertex["z"] = coord[:, 0], coord[:, 1], coord[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    vertex["prediction"] = labels
    comments = [f"{PREDICTION_COMMENT}: {description}", "red, green, blue: class colours; prediction: predicted class"]
    PlyData([PlyElement.describe(vertex, "vertex")], comments=comments).write(str(path))


def _is_ppt_prediction(ply, vertices, label_key: str | None) -> bool:
    """A PLY written by ``ppt predict``: marked by its header comment, or (written before ppt
    marked them) every point coloured exactly with ppt's colour of its ``label``."""
    if any(comment.startswith(PREDICTION_COMMENT) for comment in ply.comments):
        return True
    names = vertices.data.dtype.names
    if label_key != "label" or not {"red", "green", "blue"} <= set(names) or len(vertices.data) == 0:
        return False
    labels = np.asarray(vertices["label"], dtype=np.int64)
    if labels.min() < 0:
        return False
    rgb = np.stack([np.asarray(vertices[key]) for key in ("red", "green", "blue")], 1)
    return bool(np.array_equal(rgb, palette(int(labels.max()) + 1)[labels]))


def plot_top_down(path: Path, coord: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None,
                  class_names: list[str], colours: np.ndarray) -> None:
    """:func:`top_down_figure` as a PNG at ``path``, cropped to its contents so nothing is cut."""
    import matplotlib.pyplot as plt

    figure = top_down_figure(coord, prediction, truth, class_names, colours)
    figure.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.1)
    plt.close(figure)


def top_down_figure(coord: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None, class_names: list[str],
                    colours: np.ndarray):
    """Prediction (and ground truth, when labelled) seen from above; the top 15% of the height
    (ceilings) is left out so the floor plan shows. Panels take the room's proportions; the
    legend of the classes shown stands in columns right of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = coord[:, 2]
    keep = z <= z.min() + 0.85 * (z.max() - z.min()) if len(z) else np.zeros(0, bool)
    order = np.argsort(z[keep], kind="stable")
    xy = coord[keep][order, :2]
    panels = [("prediction", prediction)] + ([("ground truth", truth)] if truth is not None and (truth >= 0).any() else [])
    # each panel fits a 6-inch square in the room's proportions, and is at least 2.5 inches either way
    span = np.ptp(xy, axis=0) if len(xy) else np.ones(2)
    aspect = float(span[1] / span[0]) if span[0] > 0 and span[1] > 0 else 1.0
    width, height = (6.0, max(2.5, 6.0 * aspect)) if aspect <= 1 else (max(2.5, 6.0 / aspect), 6.0)
    present = sorted(set(prediction.tolist()) | (set(truth[truth >= 0].tolist()) if truth is not None else set()))
    rows_per_column = max(8, int(height * 4))  # legend rows of 8-point text fit the panel height
    columns = max(1, -(-len(present) // rows_per_column))
    legend_width = columns * (0.4 + 0.075 * max((len(class_names[c]) for c in present), default=0))
    figure, axes = plt.subplots(1, len(panels), figsize=(width * len(panels) + legend_width, height + 0.5),
                                squeeze=False, layout="constrained")
    grey = np.array([200, 200, 200], dtype=np.uint8)
    for axis, (title, labels) in zip(axes[0], panels):
        shown = labels[keep][order]
        rgb = np.where((shown >= 0)[:, None], colours[shown.clip(min=0)], grey) / 255.0
        axis.scatter(xy[:, 0], xy[:, 1], c=rgb, s=0.5, linewidths=0)
        axis.set_title(title)
        axis.set_aspect("equal")
        axis.axis("off")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[c] / 255.0, label=class_names[c])
               for c in present]
    if handles:
        figure.legend(handles=handles, loc="outside right upper", ncol=columns, fontsize=8, frameon=False)
    return figure


def choose_source(loaded: LoadedCheckpoint, path: str | PathLike, condition: str | None = None) -> str:
    """The data source of a segmentation checkpoint whose classes (and, for Point Prompt
    Training, whose prompt) label the scene at ``path``.

    ``condition`` names it: a source of the recipe (``scannet``) or its dataset (``ScanNet``),
    in any case. Without it a single-source checkpoint uses its source, and a multi-dataset one
    (``ppt-joint``) the one dataset whose scenes ``path`` is laid out like
    (:meth:`~ppt.data.SceneDataset.recognises`).

    Raises:
        ValueError: ``condition`` is none of the sources, or the layout does not single one out
            (the message lists them).
    """
    sources = {name: loaded.task.dataset_class(source) for name, source in loaded.config.data.sources.items()}
    listing = ", ".join(f"{name} ({dataset.condition})" for name, dataset in sources.items())
    if condition is not None:
        chosen = [name for name, dataset in sources.items()
                  if condition.lower() in (name.lower(), dataset.condition.lower())]
        if not chosen:
            raise ValueError(f"--condition {condition!r}: {loaded.path} was trained on {listing}; name one of them")
        return chosen[0]
    if len(sources) == 1:
        return next(iter(sources))
    matches = [name for name, dataset in sources.items() if dataset.recognises(path)]
    if len(matches) == 1:
        return matches[0]
    layout = "matches " + " and ".join(matches) if matches else "matches none of them"
    raise ValueError(f"{path}: {loaded.path} was trained on {len(sources)} datasets, {listing}, and the scene's layout "
                     f"{layout}; choose whose classes to predict with --condition NAME")


def predict_file(loaded: LoadedCheckpoint, path: str | PathLike, out: str | PathLike, *,
                 condition: str | None = None, category: str | None = None) -> dict:
    """Predict every point of a scene folder or ``.ply`` file with the classes of the source
    :func:`choose_source` picks (``condition``); write ``<name>.labels.npy`` (int64 class per point),
    ``<name>.ply`` (points coloured by class, with a ``prediction`` property; :func:`write_ply`) and
    ``<name>.png`` (top-down view, next to the ground truth when the input is labelled). For an
    outdoor source the input is a raw sweep of its dataset (:meth:`~ppt.data.sweeps.SweepDataset.read_sweep`:
    a SemanticKITTI or nuScenes ``.bin``, a Waymo frame folder), run through the checkpoint's
    outdoor chain (its ``PointClip`` range, grid sampling) and labelled at every input point; a
    SemanticKITTI prediction is also written as ``<name>.label`` in the benchmark's format. A
    part-segmentation checkpoint labels an object file of the ``category`` instead
    (:func:`ppt.engine.part_inference.predict_part_file`)."""
    from ppt.engine.tasks.part_segmentation import PartSegmentationTask

    task = loaded.task
    if isinstance(task, PartSegmentationTask):
        from ppt.engine.part_inference import predict_part_file

        return predict_part_file(loaded, path, out, category=category)
    if category is not None:
        raise ValueError(f"--category applies to part-segmentation checkpoints; {loaded.path} is a "
                         f"{loaded.config.task} checkpoint")
    if not isinstance(task, SegmentationTask):
        raise ValueError(f"ppt predict labels scenes with segmentation checkpoints (tasks segmentation, "
                         f"ppt-segmentation, part-segmentation); {loaded.path} is a {loaded.config.task} checkpoint")
    source_name = choose_source(loaded, path, condition)
    dataset_class = task.dataset_class(loaded.config.data.sources[source_name])
    class_names = task.class_names[source_name]
    if issubclass(dataset_class, SweepDataset):
        sample, note = dataset_class.read_sweep(path), None
    else:
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
    write_ply(out / f"{name}.ply", coord, prediction, colours,
              f"{loaded.path.name} ({loaded.meta.provenance.get('recipe') or loaded.config.task}, step "
              f"{loaded.meta.step}), {dataset_class.condition} classes, of {Path(path).name}")
    truth = sample.segment.numpy()
    plot_top_down(out / f"{name}.png", coord, prediction, truth, class_names, colours)
    files = [out / f"{name}{suffix}" for suffix in (".labels.npy", ".ply", ".png")]
    if issubclass(dataset_class, SweepDataset):
        files += dataset_class.prediction_files(out, name, prediction)
    result = {"name": name, "source": source_name, "condition": dataset_class.condition, "points": int(coord.shape[0]),
              "files": [str(file) for file in files], "note": note}
    if (truth >= 0).any():
        confusion = ConfusionMatrix(len(class_names))
        confusion.update(torch.from_numpy(prediction), torch.from_numpy(truth))
        result["mIoU"] = confusion.summary()["mIoU"]
    return result
