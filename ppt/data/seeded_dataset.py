"""Per-item randomness shared by every dataset of ppt: an item's transform draws from a generator
seeded by ``(seed, epoch, index)``, so the item is the same whichever DataLoader worker loads it,
and :meth:`SeededDataset.set_epoch` gives each epoch a fresh augmentation."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SeededDataset"]


class SeededDataset(torch.utils.data.Dataset):
    """Holds ``transform``, ``seed`` and ``epoch`` and makes each item's generator."""

    def __init__(self, transform, seed: int) -> None:
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a fresh augmentation of every item in each epoch (call before iterating)."""
        self.epoch = int(epoch)

    def generator(self, index: int) -> torch.Generator:
        """The generator that transforms item ``index`` in the current epoch."""
        state = np.random.SeedSequence((self.seed, self.epoch, index)).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(state))
