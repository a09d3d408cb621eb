"""The procedural objects of :mod:`ppt.data.objects.synthetic` written in the layouts of the other
object datasets, so every object recipe has an embedded default:

* ``modelnet40``: ``modelnet40_normal_resampled`` with ``modelnet40_shape_names.txt`` (the 15
  synthetic classes), the split lists and the ``modelnet40_{split}_{P}pts_fps.dat`` caches
  (:class:`ppt.data.ModelNet40` with ``num_points=P``);
* ``shapenet55``: ``ShapeNet55-34`` with ``shapenet_pc/<synset>-<id>.npy`` clouds and
  ``ShapeNet-55/{train,test}.txt`` (:class:`ppt.data.ShapeNet55`, Point-MAE pre-training);
* ``fewshot``: Point-BERT's ``{way}way_{shot}shot/{fold}.pkl`` folds (:class:`ppt.data.ModelNetFewShot`):
  ``way`` random classes, ``shot`` training and (as Point-BERT's) 20 test objects of each.

Objects are the clean ones (``synthesize_object``), on the unit sphere.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import numpy as np

from ppt.data.objects.scanobjectnn import SCANOBJECTNN_CLASSES
from ppt.data.objects.synthetic import synthesize_object

__all__ = ["write_synthetic_modelnet40", "write_synthetic_shapenet55", "write_synthetic_fewshot"]

_SPLITS = (("train", 0), ("test", 1))


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _objects(labels: np.ndarray, rng: np.random.Generator, num_points: int) -> Iterator[np.ndarray]:
    for label in labels:
        yield synthesize_object(int(label), rng, num_points)[0]


def write_synthetic_modelnet40(out: str | PathLike, *, seed: int = 0, train_per_class: int = 64,
                               test_per_class: int = 16, num_points: int = 2048) -> list[Path]:
    """Write a 15-class stand-in in ModelNet40's layout under ``out`` and return the files written."""
    _check_counts(train_per_class=train_per_class, test_per_class=test_per_class, num_points=num_points)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = out / "modelnet40_shape_names.txt"
    names.write_text("\n".join(SCANOBJECTNN_CLASSES) + "\n")
    written = [names]
    for split, stream in _SPLITS:
        per_class = train_per_class if split == "train" else test_per_class
        rng = np.random.default_rng([seed, stream, 40])
        labels = np.repeat(np.arange(len(SCANOBJECTNN_CLASSES)), per_class)
        ids = [f"{SCANOBJECTNN_CLASSES[label]}_{i % per_class + 1:04d}" for i, label in enumerate(labels)]
        split_list = out / f"modelnet40_{split}.txt"
        split_list.write_text("\n".join(ids) + "\n")
        cache = out / f"modelnet40_{split}_{num_points}pts_fps.dat"
        with cache.open("wb") as file:
            pickle.dump([list(_objects(labels, rng, num_points)),
                         [np.array([label], dtype=np.int32) for label in labels]], file)
        written += [split_list, cache]
    return written


def write_synthetic_shapenet55(out: str | PathLike, *, seed: int = 0, train_per_class: int = 64,
                               test_per_class: int = 16, num_points: int = 2048) -> list[Path]:
    """Write the objects as ShapeNet-55 clouds under ``out`` (one made-up synset per class) and
    return the two split lists."""
    _check_counts(train_per_class=train_per_class, test_per_class=test_per_class, num_points=num_points)
    out = Path(out)
    clouds = out / "shapenet_pc"
    clouds.mkdir(parents=True, exist_ok=True)
    (out / "ShapeNet-55").mkdir(exist_ok=True)
    written = []
    for split, stream in _SPLITS:
        per_class = train_per_class if split == "train" else test_per_class
        rng = np.random.default_rng([seed, stream, 55])
        labels = np.repeat(np.arange(len(SCANOBJECTNN_CLASSES)), per_class)
        files = []
        for i, (label, cloud) in enumerate(zip(labels, _objects(labels, rng, num_points))):
            name = f"{label:08d}-{split}{i:05d}.npy"
            np.save(clouds / name, cloud)
            files.append(name)
        split_list = out / "ShapeNet-55" / f"{split}.txt"
        split_list.write_text("\n".join(files) + "\n")
        written.append(split_list)
    return written


def write_synthetic_fewshot(out: str | PathLike, *, way: int = 5, shot: int = 10, folds: int | list[int] = 10,
                            test_per_class: int = 20, seed: int = 0, num_points: int = 2048) -> list[Path]:
    """Write few-shot folds ``out/{way}way_{shot}shot/{fold}.pkl`` (``folds``: a count or the fold
    numbers) and return them. Each fold draws its own ``way`` classes of the 15."""
    _check_counts(way=way, shot=shot, test_per_class=test_per_class, num_points=num_points)
    if way > len(SCANOBJECTNN_CLASSES):
        raise ValueError(f"way must be <= {len(SCANOBJECTNN_CLASSES)} (the synthetic classes), got {way}")
    fold_ids = list(range(folds)) if isinstance(folds, int) else list(folds)
    folder = Path(out) / f"{way}way_{shot}shot"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fold in fold_ids:
        rng = np.random.default_rng([seed, way, shot, fold])
        classes = rng.choice(len(SCANOBJECTNN_CLASSES), size=way, replace=False)
        content = {}
        for split, per_class in (("train", shot), ("test", test_per_class)):
            episode = np.repeat(np.arange(way), per_class)
            content[split] = [(cloud, int(label), int(classes[label]))
                              for label, cloud in zip(episode, _objects(classes[episode], rng, num_points))]
        path = folder / f"{fold}.pkl"
        with path.open("wb") as file:
            pickle.dump(content, file)
        written.append(path)
    return written
