"""MultiDatasetBatchSampler: ratios, the epoch rule, single vs mixed batches, determinism, DDP ranks."""

import math
from collections import Counter

import pytest
import torch

from ppt.data import PPT_RATIOS, MultiDatasetBatchSampler, SceneSample, collate_scenes

SIZES = {"Structured3D": 96, "ScanNet": 40, "S3DIS": 10}


def _datasets_per_batch(sampler, batches):
    return [Counter(sampler.dataset_of(i) for i in batch) for batch in batches]


def test_single_dataset_batches_follow_the_ratio_and_the_epoch_rule():
    sampler = MultiDatasetBatchSampler(SIZES, batch_size=4)
    assert dict(zip(sampler.names, sampler.ratios)) == PPT_RATIOS
    batches = list(sampler)
    # Epoch rule: the anchor (first) has 96 // 4 = 24 batches; ceil(24 * 7 / 4) = 42 steps.
    assert len(sampler) == len(batches) == 42
    kinds = _datasets_per_batch(sampler, batches)
    assert all(len(kind) == 1 and sum(kind.values()) == 4 for kind in kinds)  # one dataset per batch
    per_dataset = Counter(next(iter(kind)) for kind in kinds)
    assert per_dataset == {"Structured3D": 24, "ScanNet": 12, "S3DIS": 6}  # 4 : 2 : 1
    # Each round of 7 batches holds exactly 4 : 2 : 1.
    for start in range(0, 42, 7):
        assert Counter(next(iter(kind)) for kind in kinds[start:start + 7]) == {"Structured3D": 4, "ScanNet": 2,
                                                                                  "S3DIS": 1}
    # The anchor is drawn once per epoch; the small S3DIS (10 samples, 24 draws) cycles.
    anchor = [i for batch in batches for i in batch if sampler.dataset_of(i) == "Structured3D"]
    assert sorted(anchor) == list(range(96))
    s3dis = Counter(i for batch in batches for i in batch if sampler.dataset_of(i) == "S3DIS")
    assert set(s3dis) == set(range(136, 146)) and max(s3dis.values()) - min(s3dis.values()) <= 1


def test_mixed_batches_follow_the_ratio_per_sample():
    sampler = MultiDatasetBatchSampler(SIZES, batch_size=7, mixed=True, ratios={"Structured3D": 4, "ScanNet": 2,
                                                                                "S3DIS": 1})
    batches = list(sampler)
    assert len(batches) == math.ceil((96 // 7) * 7 / 4)
    counts = Counter(sampler.dataset_of(i) for batch in batches for i in batch)
    total = sum(counts.values())
    assert total == len(batches) * 7
    assert counts["Structured3D"] / total == pytest.approx(4 / 7, abs=1 / total * 4)
    assert counts["ScanNet"] / total == pytest.approx(2 / 7, abs=1 / total * 4)
    assert sum(len(kind) > 1 for kind in _datasets_per_batch(sampler, batches)) > len(batches) // 2  # mixed


def test_custom_ratios_and_names():
    sampler = MultiDatasetBatchSampler({"a": 30, "b": 30}, batch_size=3, ratios={"a": 1, "b": 3})
    per_dataset = Counter(next(iter(kind)) for kind in _datasets_per_batch(sampler, list(sampler)))
    assert per_dataset == {"a": 10, "b": 30}
    assert MultiDatasetBatchSampler({"x": 10, "y": 10}, batch_size=2).ratios == (1, 1)  # unknown names: 1 each


def test_deterministic_per_seed_and_epoch():
    def run(seed, epoch, mixed=False):
        sampler = MultiDatasetBatchSampler(SIZES, batch_size=4, seed=seed, mixed=mixed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert run(0, 0) == run(0, 0) and run(3, 2, True) == run(3, 2, True)
    assert run(0, 0) != run(0, 1)
    assert run(0, 0) != run(1, 0)


@pytest.mark.parametrize("mixed", [False, True])
def test_ranks_split_each_global_batch(mixed):
    world = 3
    samplers = [MultiDatasetBatchSampler(SIZES, batch_size=2, rank=r, world_size=world, mixed=mixed)
                for r in range(world)]
    per_rank = [list(sampler) for sampler in samplers]
    assert len({len(batches) for batches in per_rank}) == 1
    assert len(per_rank[0]) == math.ceil((96 // 6) * 7 / 4)
    for step in zip(*per_rank):
        assert all(len(batch) == 2 for batch in step)
        indices = [i for batch in step for i in batch]
        if not mixed:  # all ranks on one dataset at this step, on different samples (within a pass)
            datasets = {samplers[0].dataset_of(i) for i in indices}
            assert len(datasets) == 1
            if datasets == {"Structured3D"}:  # 96 = 16 global batches: no batch straddles two passes
                assert len(set(indices)) == len(indices)


@pytest.mark.parametrize("mixed", [False, True])
def test_two_processes_equal_one_process_accumulating(mixed):
    """The engine's contract: every step's global batch is the same whatever the split between
    processes and accumulation, and process r holds micro-batches r * accumulate ... of it."""
    def sampler(**kwargs):
        return MultiDatasetBatchSampler(SIZES, batch_size=2, mixed=mixed, seed=5, **kwargs)

    single = list(sampler(accumulate=4))
    ranks = [list(sampler(accumulate=2, rank=r, world_size=2)) for r in (0, 1)]
    plain = list(sampler(accumulate=1, rank=0, world_size=4))
    steps = sampler(accumulate=4).steps_per_epoch
    assert len(single) == 4 * steps and all(len(r) == 2 * steps for r in ranks) and len(plain) == steps
    assert steps == math.ceil((96 // 8) * 7 / 4)  # the epoch rule counts global batches
    for step in range(steps):
        assert single[4 * step:4 * step + 4] == ranks[0][2 * step:2 * step + 2] + ranks[1][2 * step:2 * step + 2]
        assert plain[step] == single[4 * step]
        if not mixed:
            assert len({sampler().dataset_of(i) for batch in single[4 * step:4 * step + 4] for i in batch}) == 1


def test_works_as_a_dataloader_batch_sampler():
    datasets = [list(range(size)) for size in SIZES.values()]
    concatenated = torch.utils.data.ConcatDataset(datasets)
    sampler = MultiDatasetBatchSampler(SIZES, batch_size=4)
    loader = torch.utils.data.DataLoader(concatenated, batch_sampler=sampler)
    first = next(iter(loader))
    assert first.shape == (4,) and len(loader) == 42


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive integers"):
        MultiDatasetBatchSampler(SIZES, 2, ratios={"Structured3D": 0.5, "ScanNet": 2, "S3DIS": 1})
    with pytest.raises(ValueError, match="ratios must name the datasets"):
        MultiDatasetBatchSampler(SIZES, 2, ratios={"ScanNet": 2})
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        MultiDatasetBatchSampler(SIZES, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="positive sizes"):
        MultiDatasetBatchSampler({"ScanNet": 0}, 2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        MultiDatasetBatchSampler(SIZES, 0)
    with pytest.raises(ValueError, match="accumulate must be >= 1"):
        MultiDatasetBatchSampler(SIZES, 2, accumulate=0)
    with pytest.raises(ValueError, match="smaller than one global batch of 160"):
        MultiDatasetBatchSampler(SIZES, 8, accumulate=5, world_size=4)
    with pytest.raises(IndexError, match="outside the 146 concatenated samples"):
        MultiDatasetBatchSampler(SIZES, 2).dataset_of(146)


def _scene(name, condition, points, seed):
    generator = torch.Generator().manual_seed(seed)
    return SceneSample(coord=torch.rand(points, 3, generator=generator), color=torch.rand(points, 3, generator=generator),
                       normal=None, segment=torch.zeros(points, dtype=torch.long),
                       instance=torch.full((points,), -1, dtype=torch.long), name=name, condition=condition,
                       grid_coord=torch.randint(0, 5, (points, 3), generator=generator, dtype=torch.int32))


def test_scene_batch_condition_index():
    batch = collate_scenes([_scene("a", "S3DIS", 3, 0), _scene("b", "ScanNet", 2, 1)], feat_keys=("color",))
    assert batch.condition_index(("Structured3D", "ScanNet", "S3DIS")).tolist() == [2, 2, 2, 1, 1]
    with pytest.raises(ValueError, match="condition 'S3DIS' is not in"):
        batch.condition_index(("ScanNet",))
