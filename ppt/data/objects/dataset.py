"""Base of the object classification datasets: items are :class:`ObjectSample`, transformed with a
generator seeded per ``(seed, epoch, index)`` so an item is the same whichever worker loads it."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from ppt.data.objects.sample import ObjectSample
from ppt.data.objects.transforms import ObjectTransform
from ppt.data.seeded_dataset import SeededDataset

__all__ = ["ObjectDataset"]


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
