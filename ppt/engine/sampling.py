"""The order of training samples: deterministic per ``(seed, epoch)``, split into the micro-batches
of each process, with several datasets mixed by ratio.

Both come from :class:`ppt.data.MultiDatasetBatchSampler` (its docstring states the epoch rule
and the split of a global batch of ``batch_size * accumulate * world_size`` samples into the
micro-batches of the processes, which makes 2 processes equal 1 process accumulating 2). With
``mixed`` a batch mixes the datasets (the model then needs a condition per point); otherwise
each step's global batch comes from one dataset, as Pointcept and PPT train.
"""

from __future__ import annotations

from collections.abc import Sequence

from ppt.data.samplers import MultiDatasetBatchSampler

__all__ = ["epoch_sampler", "plan_epoch", "shard_indices"]


def epoch_sampler(sizes: Sequence[int], ratios: Sequence[float], *, batch_size: int, accumulate: int,
                  world_size: int, rank: int, seed: int, mixed: bool = False) -> MultiDatasetBatchSampler:
    """The sampler of a run over datasets of ``sizes`` (concatenated in order), ``ratios`` being
    the recipe's ``data.sources.<name>.ratio`` (whole numbers)."""
    if any(float(r) != int(r) or r < 1 for r in ratios):
        raise ValueError(f"data.sources.<name>.ratio must be whole numbers >= 1 (rounds of draws), got {list(ratios)}")
    names = [str(i) for i in range(len(sizes))]
    return MultiDatasetBatchSampler(dict(zip(names, sizes)), batch_size, ratios=dict(zip(names, map(int, ratios))),
                                    mixed=mixed, seed=seed, rank=rank, world_size=world_size, accumulate=accumulate)


def plan_epoch(sizes: Sequence[int], ratios: Sequence[float], *, batch_size: int, accumulate: int, world_size: int,
               rank: int, seed: int, epoch: int, mixed: bool = False) -> list[list[int]]:
    """This process's micro-batches of epoch ``epoch``, as indices into the concatenation of the
    datasets of ``sizes`` (in order): ``accumulate`` consecutive micro-batches make one step."""
    sampler = epoch_sampler(sizes, ratios, batch_size=batch_size, accumulate=accumulate, world_size=world_size,
                            rank=rank, seed=seed, mixed=mixed)
    sampler.set_epoch(epoch)
    return list(sampler)


def shard_indices(size: int, rank: int, world_size: int) -> list[int]:
    """Evaluation items of one process: every ``world_size``-th, no padding (metrics are summed)."""
    return list(range(rank, size, world_size))
