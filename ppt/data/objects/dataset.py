"""Base of the object classification datasets: items are :class:`ObjectSample`, transformed with a
generator seeded per ``(seed, epoch, index)`` so an item is the same whichever worker loads it;
:class:`ObjectSubset` and :func:`stratified_holdout` carve a validation split out of a training split."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from ppt.data.objects.sample import ObjectSample
from ppt.data.objects.transforms import ObjectTransform
from ppt.data.seeded_dataset import SeededDataset

__all__ = ["ObjectDataset", "ObjectSubset", "stratified_holdout"]


class ObjectDataset(SeededDataset, ABC):
    """Subclasses set ``class_names`` and implement ``__len__`` and :meth:`load`.

    Args:
        transform: applied to each loaded sample with the item's generator.
        seed: base seed of the transforms' randomness.
    """

    class_names: tuple[str, ...]

    def __init__(self, transform: ObjectTransform | None = None, *, seed: int = 0) -> None:
        super().__init__(transform, seed)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def load(self, index: int) -> ObjectSample:
        """Item ``index`` as stored (after the dataset's own normalisation), without the transform."""

    def draw(self, index: int, generator: torch.Generator) -> ObjectSample:
        """Item ``index`` before the transform: :meth:`load`, unless the dataset samples its items itself."""
        return self.load(index)

    @abstractmethod
    def __len__(self) -> int:
        """Number of objects."""

    def __getitem__(self, index: int) -> ObjectSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {len(self)} objects")
        index %= len(self)
        generator = self.generator(index)
        sample = self.draw(index, generator)
        return sample if self.transform is None else self.transform(sample, generator)


class ObjectSubset(ObjectDataset):
    """The items ``indices`` of ``dataset`` (in that order), as stored; ``transform`` and ``seed``
    are the subset's own (``dataset``'s transform is not applied)."""

    def __init__(self, dataset: ObjectDataset, indices: Sequence[int], transform: ObjectTransform | None = None, *,
                 seed: int = 0) -> None:
        super().__init__(transform, seed=seed)
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.class_names = dataset.class_names
        if any(not 0 <= i < len(dataset) for i in self.indices):
            raise IndexError(f"ObjectSubset: indices must lie in [0, {len(dataset)}) for {type(dataset).__name__}")

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> ObjectSample:
        return self.dataset.load(self.indices[index])

    def draw(self, index: int, generator: torch.Generator) -> ObjectSample:
        return self.dataset.draw(self.indices[index], generator)

    def __repr__(self) -> str:
        return f"ObjectSubset({self.dataset!r}, objects={len(self)})"


def stratified_holdout(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split the indices of ``labels`` into ``(kept, held_out)``: of each class's ``n`` items,
    ``round(fraction * n)`` (halves rounded up) drawn at random with ``seed`` are held out. Both
    lists are in ascending order; the split depends on ``labels``, ``fraction`` and ``seed`` only."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must lie in [0, 1), got {fraction}")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(np.floor(fraction * len(members) + 0.5))
        held += rng.permutation(members)[:count].tolist()
    chosen = np.zeros(len(labels), dtype=bool)
    chosen[held] = True
    return np.flatnonzero(~chosen).tolist(), np.flatnonzero(chosen).tolist()
