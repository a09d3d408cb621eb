"""Batch sampling over several datasets at fixed ratios (Point Prompt Training's joint training),
the one sampler of ppt: :func:`ppt.engine.train` draws every recipe's batches from it.

:class:`MultiDatasetBatchSampler` yields index lists into the concatenation of the datasets
(``torch.utils.data.ConcatDataset`` order), for ``DataLoader(batch_sampler=...)``.

A step consumes one *global batch* of ``batch_size * accumulate * world_size`` samples, split into
``accumulate * world_size`` micro-batches; process ``r`` gets micro-batches ``r * accumulate ...
(r + 1) * accumulate - 1``, so the same samples reach the optimizer whatever the split between
processes and gradient accumulation (2 processes == 1 process accumulating 2).

The epoch rule: the first dataset is the anchor (Structured3D in PPT's order). With ``A`` =
``len(anchor) // global_batch`` (at least 1) the anchor's global batches in one pass, an epoch
has ``ceil(A * sum(ratios) / ratios[anchor])`` steps: on average as many rounds as it takes to
draw the anchor once. That is Pointcept's ``MultiDatasetDataloader`` rule (its length is set by
its first dataset), made independent of the seed so that schedules know the epoch length. With
one dataset it is ``len // global_batch`` steps, each sample at most once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np
import torch

__all__ = ["MultiDatasetBatchSampler", "PPT_RATIOS"]

PPT_RATIOS = {"Structured3D": 4, "ScanNet": 2, "S3DIS": 1}
"""PPT's sampling ratio (Structured3D : ScanNet : S3DIS = 4 : 2 : 1; Pointcept's ``loop`` weights)."""


def _generator(*key: int) -> torch.Generator:
    state = np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class _Stream:
    """Endless sample indices of one dataset: a fresh permutation per pass, seeded by
    ``(seed, epoch, dataset, pass)``."""

    def __init__(self, size: int, seed: int, epoch: int, dataset: int, shuffle: bool) -> None:
        self.size, self.key, self.shuffle = size, (seed, epoch, dataset), shuffle
        self.passes, self.order, self.position = 0, torch.empty(0, dtype=torch.long), 0

    def take(self, count: int) -> list[int]:
        taken: list[int] = []
        while len(taken) < count:
            if self.position == len(self.order):
                self.order = (torch.randperm(self.size, generator=_generator(*self.key, self.passes))
                              if self.shuffle else torch.arange(self.size))
                self.passes, self.position = self.passes + 1, 0
            step = min(count - len(taken), len(self.order) - self.position)
            taken += self.order[self.position:self.position + step].tolist()
            self.position += step
        return taken


class MultiDatasetBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches drawn from several datasets in fixed ratios, deterministic per seed and epoch.

    Each round of ``sum(ratios)`` draws takes ``ratios[i]`` from dataset ``i``, in an order
    shuffled per round. With ``mixed=False`` a draw is a whole batch (single-dataset batches, what
    Pointcept does); with ``mixed=True`` a draw is one sample, and consecutive draws fill mixed
    batches (run them with per-point condition ids). Every dataset is read as an endless stream
    of per-pass permutations, so a small dataset is repeated within an epoch (and a batch that
    straddles two passes may hold a sample twice).

    Distributed and accumulated: all ranks compute the same schedule of global batches (``M =
    accumulate * world_size`` micro-batches of ``batch_size``) and micro-batch ``m`` takes, in
    single-dataset mode, the ``m``-th slice of the global batch, so all ranks hold the same
    dataset at every step (what synchronised per-dataset norms need); in mixed mode every
    ``M``-th draw from ``m`` on, so each micro-batch mixes alike. Rank ``r`` yields micro-batches
    ``r * accumulate`` to ``(r + 1) * accumulate - 1`` of every step.

    Args:
        sizes: ``{dataset name: number of samples}`` in the order of the concatenated dataset.
        batch_size: samples per micro-batch on each rank.
        ratios: ``{name: positive int}``; default :data:`PPT_RATIOS` for the names it knows, 1
            for others.
        mixed: mixed-dataset batches instead of single-dataset ones.
        seed: the seed of every permutation and round order.
        rank, world_size: this process and the number of processes (default: from
            ``torch.distributed`` when initialised, else 0 and 1).
        shuffle: permute each dataset (else read in order; rounds are still shuffled).
        batches_per_epoch: override the epoch rule (module docstring): global batches (steps).
        accumulate: micro-batches per step on each rank (gradient accumulation).

    ``len(sampler)`` is the number of micro-batches it yields per epoch (``steps_per_epoch *
    accumulate``). Call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``.
    """

    def __init__(self, sizes: Mapping[str, int], batch_size: int, ratios: Mapping[str, int] | None = None,
                 mixed: bool = False, seed: int = 0, rank: int | None = None, world_size: int | None = None,
                 shuffle: bool = True, batches_per_epoch: int | None = None, accumulate: int = 1) -> None:
        if not sizes or any(int(size) < 1 for size in sizes.values()):
            raise ValueError(f"MultiDatasetBatchSampler: sizes must map dataset names to positive sizes, got {dict(sizes)}")
        if batch_size < 1:
            raise ValueError(f"MultiDatasetBatchSampler: batch_size must be >= 1, got {batch_size}")
        if accumulate < 1:
            raise ValueError(f"MultiDatasetBatchSampler: accumulate must be >= 1, got {accumulate}")
        names = tuple(sizes)
        ratios = dict(ratios) if ratios is not None else {name: PPT_RATIOS.get(name, 1) for name in names}
        if set(ratios) != set(names):
            raise ValueError(f"MultiDatasetBatchSampler: ratios must name the datasets {names}, got {sorted(ratios)}")
        if any(not isinstance(value, int) or isinstance(value, bool) or value < 1 for value in ratios.values()):
            raise ValueError(f"MultiDatasetBatchSampler: ratios must be positive integers, got {ratios}")
        if world_size is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            world_size = torch.distributed.get_world_size() if distributed else 1
            rank = (torch.distributed.get_rank() if distributed else 0) if rank is None else rank
        rank = 0 if rank is None else rank
        if not 0 <= rank < world_size:
            raise ValueError(f"MultiDatasetBatchSampler: rank must be in [0, {world_size}), got {rank}")
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ValueError(f"MultiDatasetBatchSampler: batches_per_epoch must be >= 1, got {batches_per_epoch}")
        self.names, self.sizes = names, tuple(int(sizes[name]) for name in names)
        self.ratios = tuple(ratios[name] for name in names)
        self.offsets = tuple(int(v) for v in np.cumsum((0,) + self.sizes[:-1]))
        self.batch_size, self.mixed, self.seed, self.shuffle = batch_size, mixed, int(seed), shuffle
        self.rank, self.world_size, self.accumulate = rank, world_size, accumulate
        self.micro_batches = accumulate * world_size  # of one global batch
        self.global_batch = batch_size * self.micro_batches
        if sum(self.sizes) < self.global_batch:
            raise ValueError(f"the training data ({sum(self.sizes)} samples) is smaller than one global batch of "
                             f"{self.global_batch} (batch_size x accumulate x processes); lower the batch or add data")
        self.epoch = 0
        anchor_batches = max(1, self.sizes[0] // self.global_batch)
        self.steps_per_epoch = batches_per_epoch or math.ceil(anchor_batches * sum(self.ratios) / self.ratios[0])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch * self.accumulate

    def _draw_order(self, draws: int) -> list[int]:
        """The dataset of each of ``draws`` draws: rounds of the ratio multiset, each shuffled."""
        round_datasets = torch.tensor([i for i, ratio in enumerate(self.ratios) for _ in range(ratio)])
        rounds = math.ceil(draws / len(round_datasets))
        generator = _generator(self.seed, self.epoch, len(self.sizes))  # its own key, apart from the streams
        order = [round_datasets[torch.randperm(len(round_datasets), generator=generator)] for _ in range(rounds)]
        return torch.cat(order)[:draws].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        streams = [_Stream(size, self.seed, self.epoch, i, self.shuffle) for i, size in enumerate(self.sizes)]
        mine = range(self.rank * self.accumulate, (self.rank + 1) * self.accumulate)
        if self.mixed:
            # Draw order per sample; each global batch's samples are dealt to the micro-batches in
            # turn of draw, so every micro-batch mixes the datasets in the same proportion.
            datasets = self._draw_order(self.steps_per_epoch * self.global_batch)
            for step in range(self.steps_per_epoch):
                drawn = datasets[step * self.global_batch:(step + 1) * self.global_batch]
                batch = [self.offsets[d] + streams[d].take(1)[0] for d in drawn]
                for micro in mine:
                    yield batch[micro::self.micro_batches]
        else:
            for dataset in self._draw_order(self.steps_per_epoch):
                batch = [self.offsets[dataset] + index for index in streams[dataset].take(self.global_batch)]
                for micro in mine:
                    yield batch[micro * self.batch_size:(micro + 1) * self.batch_size]

    def dataset_of(self, index: int) -> str:
        """The name of the dataset that concatenated index ``index`` belongs to."""
        position = int(np.searchsorted(self.offsets, index, side="right")) - 1
        if index < 0 or index >= self.offsets[-1] + self.sizes[-1]:
            raise IndexError(f"index {index} is outside the {self.offsets[-1] + self.sizes[-1]} concatenated samples")
        return self.names[position]
