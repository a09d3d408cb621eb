"""The order of training samples: deterministic per ``(seed, epoch)``, split into the micro-batches
of each process, with several datasets mixed by ratio.

A step consumes one *global batch* of ``batch_size * accumulate * world_size`` samples, all from
one dataset (Pointcept and PPT train on single-dataset batches). Process ``r`` gets micro-batches
``r * accumulate ... (r + 1) * accumulate - 1`` of it, so the same data reach the optimizer
whatever the split between processes and accumulation. An epoch of several datasets holds
``sum(len_i) // global_batch`` batches, dataset ``i`` contributing a share proportional to its
``ratio`` (indices drawn from fresh permutations as often as needed), in shuffled order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["plan_epoch", "steps_per_epoch", "shard_indices"]


def steps_per_epoch(sizes: Sequence[int], global_batch: int) -> int:
    steps = sum(sizes) // global_batch
    if steps < 1:
        raise ValueError(f"the training data ({sum(sizes)} samples) is smaller than one global batch of {global_batch} "
                         "(data.batch_size x train.accumulate x processes); lower the batch or add data")
    return steps


def _generator(seed: int, epoch: int) -> torch.Generator:
    state = np.random.SeedSequence((seed, epoch, 0x5A3)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def plan_epoch(sizes: Sequence[int], ratios: Sequence[float], *, batch_size: int, accumulate: int, world_size: int,
               rank: int, seed: int, epoch: int) -> list[list[int]]:
    """This process's micro-batches of epoch ``epoch``, as indices into the concatenation of the
    datasets of ``sizes`` (in order): ``accumulate`` consecutive micro-batches make one step."""
    global_batch = batch_size * accumulate * world_size
    steps = steps_per_epoch(sizes, global_batch)
    generator = _generator(seed, epoch)
    weights = np.asarray(ratios, dtype=np.float64)
    if (weights <= 0).any():
        raise ValueError(f"dataset ratios must be positive, got {list(ratios)}")
    share = weights / weights.sum() * steps
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: steps - counts.sum()]:
        counts[i] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    batches: list[list[int]] = []
    for size, start, count in zip(sizes, starts, counts):
        needed = int(count) * global_batch
        draws = [torch.randperm(size, generator=generator) for _ in range(-(-needed // size))] if needed else []
        order = (torch.cat(draws)[:needed] + int(start)).tolist() if draws else []
        batches += [order[i * global_batch:(i + 1) * global_batch] for i in range(int(count))]
    batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    mine = []
    for batch in batches:
        for micro in range(rank * accumulate, (rank + 1) * accumulate):
            mine.append(batch[micro * batch_size:(micro + 1) * batch_size])
    return mine


def shard_indices(size: int, rank: int, world_size: int) -> list[int]:
    """Evaluation items of one process: every ``world_size``-th, no padding (metrics are summed)."""
    return list(range(rank, size, world_size))
