"""The object datasets a recipe can name, how each opens from a :class:`SourceConfig`, what its
classes are before any file is read, and its synthetic stand-in (written on first use when the
source has no ``root``).

=====================  ============================================  ==========================
``dataset``            reads                                         synthetic stand-in
=====================  ============================================  ==========================
``scanobjectnn``       ScanObjectNN h5 (``variant``)                  ``ppt data synth-objects``
``modelnet40``         ``modelnet40_normal_resampled`` (+ caches)     15 classes, ModelNet layout
``modelnet40_fewshot`` ``{way}way_{shot}shot/{fold}.pkl``             folds of the 15 classes
``shapenet55``         ``ShapeNet55-34`` ``.npy`` clouds              the 15 classes as synsets
``shapenetpart``       ShapeNetPart (``..._v0_normal``), part labels   ``ppt data synth-parts``
=====================  ============================================  ==========================

``shapenetpart`` is read by the ``part-segmentation`` task (:mod:`ppt.engine.tasks.part_segmentation`);
its synthetic stand-in has ``test_per_class`` objects per category in the val and test splits each.
"""

from __future__ import annotations

from pathlib import Path

from ppt.data import ModelNet40, ModelNetFewShot, ScanObjectNN, ShapeNet55
from ppt.data.objects.dataset import ObjectDataset, ObjectSubset, stratified_holdout
from ppt.data.objects.shapenet_part import SHAPENETPART_PART_NAMES, ShapeNetPart
from ppt.data.objects.scanobjectnn import SCANOBJECTNN_CLASSES
from ppt.data.objects.transforms import ObjectTransform
from ppt.engine.config import SourceConfig, SyntheticConfig

__all__ = ["OBJECT_DATASETS", "HOLDOUT_SPLIT", "object_class_names", "open_object_dataset", "synthetic_object_name",
           "write_synthetic_object_data"]

OBJECT_DATASETS = {"scanobjectnn": ScanObjectNN, "modelnet40": ModelNet40, "modelnet40_fewshot": ModelNetFewShot,
                   "shapenet55": ShapeNet55, "shapenetpart": ShapeNetPart}
MODELNET40_CACHE_POINTS = 8192  # the points per object of Point-MAE's ModelNet40 caches


def object_class_names(source: SourceConfig) -> tuple[str, ...]:
    """The classes of a source, known without reading its objects: ModelNet40's come from
    ``modelnet40_shape_names.txt`` (the synthetic stand-in has ScanObjectNN's 15); a few-shot fold's
    are its ``way`` episode labels; ShapeNet-55 pre-training has none."""
    if source.dataset == "scanobjectnn":
        return SCANOBJECTNN_CLASSES
    if source.dataset == "modelnet40":
        if source.root is None:
            return SCANOBJECTNN_CLASSES
        names = Path(source.root).expanduser() / "modelnet40_shape_names.txt"
        if not names.is_file():
            raise FileNotFoundError(f"ModelNet40: {names} does not exist (data.root should be the "
                                    "modelnet40_normal_resampled folder)")
        return tuple(line.strip() for line in names.read_text().splitlines() if line.strip())
    if source.dataset == "modelnet40_fewshot":
        return tuple(f"way{label}" for label in range(source.way))
    if source.dataset == "shapenet55":
        return ()
    if source.dataset == "shapenetpart":
        return SHAPENETPART_PART_NAMES
    raise ValueError(f"object dataset must be one of {sorted(OBJECT_DATASETS)}, got {source.dataset!r}")


HOLDOUT_SPLIT = "holdout"


def open_object_dataset(source: SourceConfig, root: Path, split: str, transform: ObjectTransform, *, seed: int,
                        synthetic: SyntheticConfig, num_points: int) -> ObjectDataset:
    """One split of a source. ``num_points``: points per ShapeNet-55 item (pre-training draws them).
    With ``source.holdout > 0`` the split ``holdout`` is that fraction of each class of
    ``source.train_split`` (:func:`ppt.data.objects.dataset.stratified_holdout` with
    ``source.holdout_seed``), and ``source.train_split`` is the rest."""
    if split == HOLDOUT_SPLIT or (source.holdout > 0 and split == source.train_split):
        if source.holdout <= 0:
            raise ValueError(f"the {HOLDOUT_SPLIT!r} split of a {source.dataset} source needs its holdout fraction "
                             f"(data.sources.<name>.holdout) > 0, got {source.holdout}")
        whole = _open(source, root, source.train_split, None, seed=seed, synthetic=synthetic, num_points=num_points)
        kept, held = stratified_holdout([whole.load(i).label for i in range(len(whole))], source.holdout,
                                        source.holdout_seed)
        return ObjectSubset(whole, held if split == HOLDOUT_SPLIT else kept, transform, seed=seed)
    return _open(source, root, split, transform, seed=seed, synthetic=synthetic, num_points=num_points)


def _open(source: SourceConfig, root: Path, split: str, transform: ObjectTransform | None, *, seed: int,
          synthetic: SyntheticConfig, num_points: int) -> ObjectDataset:
    if source.dataset == "scanobjectnn":
        return ScanObjectNN(root, split, source.variant, transform, seed=seed)
    if source.dataset == "modelnet40":
        cache_points = MODELNET40_CACHE_POINTS if source.root else synthetic.object_points
        return ModelNet40(root, split, cache_points, transform, seed=seed, write_cache=True)
    if source.dataset == "modelnet40_fewshot":
        return ModelNetFewShot(root, source.way, source.shot, source.fold, split, transform, seed=seed)
    if source.dataset == "shapenet55":
        return ShapeNet55(root, split, num_points, transform, seed=seed)
    raise ValueError(f"object dataset must be one of {sorted(OBJECT_DATASETS)}, got {source.dataset!r}")


def _flavor(variant: str) -> str:
    return "clean" if variant == "OBJ_ONLY" else "background"


def synthetic_object_name(source: SourceConfig, synthetic: SyntheticConfig) -> str:
    """The cache folder name of a source's synthetic stand-in (it names every setting it depends on)."""
    sizes = f"seed{synthetic.seed}-{synthetic.train_per_class}x{synthetic.test_per_class}-{synthetic.object_points}pts"
    if source.dataset == "scanobjectnn":
        return f"scanobjectnn-{_flavor(source.variant)}-{sizes}"
    if source.dataset == "modelnet40_fewshot":
        return (f"modelnet40_fewshot-seed{synthetic.seed}-{source.way}way_{source.shot}shot-fold{source.fold}-"
                f"{synthetic.test_per_class}test-{synthetic.object_points}pts")
    return f"{source.dataset}-{sizes}"


def write_synthetic_object_data(source: SourceConfig, synthetic: SyntheticConfig, folder: Path) -> None:
    from ppt.data import write_synthetic_objects
    from ppt.data.objects.synthetic_layouts import (write_synthetic_fewshot, write_synthetic_modelnet40,
                                                    write_synthetic_shapenet55)

    sizes = dict(seed=synthetic.seed, train_per_class=synthetic.train_per_class,
                 test_per_class=synthetic.test_per_class, num_points=synthetic.object_points)
    if source.dataset == "scanobjectnn":
        write_synthetic_objects(folder, _flavor(source.variant), **sizes)
    elif source.dataset == "modelnet40":
        write_synthetic_modelnet40(folder, **sizes)
    elif source.dataset == "shapenet55":
        write_synthetic_shapenet55(folder, **sizes)
    elif source.dataset == "shapenetpart":
        from ppt.data.objects.synthetic_parts import write_synthetic_shapenet_part

        write_synthetic_shapenet_part(folder, val_per_class=synthetic.test_per_class, **sizes)
    else:
        write_synthetic_fewshot(folder, way=source.way, shot=source.shot, folds=[source.fold],
                                test_per_class=synthetic.test_per_class, seed=synthetic.seed,
                                num_points=synthetic.object_points)
