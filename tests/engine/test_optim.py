import itertools
import math

import pytest
import torch
from torch import nn

from ppt.engine import OptimConfig, ParamGroupConfig, build_optimizer, build_scheduler
from ppt.engine.config import ScheduleConfig
from ppt.engine.sampling import plan_epoch, shard_indices


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.prompt = nn.Parameter(torch.zeros(2, 4))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.frozen = nn.Linear(4, 4).requires_grad_(False)


def test_parameter_groups_by_pattern_skip_frozen_and_1d_decay():
    net = _Net()
    config = OptimConfig(name="sgd", lr=0.1, weight_decay=1e-4, no_decay_1d=True,
                         param_groups=[ParamGroupConfig(pattern="*prompt*", lr_scale=0.1)])
    optimizer = build_optimizer(net, config)
    by_param = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    assert by_param[id(net.prompt)]["lr"] == pytest.approx(0.01)
    assert by_param[id(net.backbone.weight)]["lr"] == 0.1 and by_param[id(net.backbone.weight)]["weight_decay"] == 1e-4
    assert by_param[id(net.backbone.bias)]["weight_decay"] == 0 and by_param[id(net.norm.weight)]["weight_decay"] == 0
    assert by_param[id(net.cls_token)]["weight_decay"] == 0  # Point-MAE: no decay on tokens
    assert by_param[id(net.prompt)]["weight_decay"] == 1e-4  # 2-d and not a token
    assert id(net.frozen.weight) not in by_param
    adamw = build_optimizer(net, OptimConfig(name="adamw", lr=5e-4, weight_decay=0.05, betas=[0.9, 0.99]))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["betas"] == (0.9, 0.99)
    with pytest.raises(ValueError, match="optim.name must be 'sgd' or 'adamw'"):
        build_optimizer(net, OptimConfig(name="lion"))


def _lrs(scheduler, optimizer, steps):
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


def test_onecycle_peaks_at_pct_start_with_group_scales():
    net = _Net()
    optimizer = build_optimizer(net, OptimConfig(lr=0.05, param_groups=[ParamGroupConfig("*prompt*", 0.1)]))
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="onecycle", pct_start=0.05), total_steps=100)
    lrs = _lrs(scheduler, optimizer, 100)
    base = [row[0] for row in lrs]
    assert base[0] == pytest.approx(0.05 / 10)
    assert max(base) == pytest.approx(0.05) and base.index(max(base)) in (4, 5)
    assert base[-1] < 1e-4
    assert all(row[1] == pytest.approx(row[0] * 0.1) for row in lrs)  # prompt group keeps its scale


@pytest.mark.parametrize("total", [1, 2, 3, 20, 40])
def test_onecycle_runs_for_any_length(total):
    # 0.05 * 20 steps would be a 1-step warm-up, on which torch's OneCycleLR divides by zero
    optimizer = build_optimizer(_Net(), OptimConfig(lr=0.05))
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="onecycle", pct_start=0.05), total_steps=total)
    lrs = [row[0] for row in _lrs(scheduler, optimizer, total)]
    assert all(0 < lr <= 0.05 + 1e-12 for lr in lrs)
    if total >= 3:
        assert lrs[0] == pytest.approx(0.005) and max(lrs) == pytest.approx(0.05)


def test_cosine_warm_up():
    net = _Net()
    optimizer = build_optimizer(net, OptimConfig(name="adamw", lr=1.0))
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="cosine", warmup_fraction=0.1, min_lr_ratio=0.01), 100)
    base = [row[0] for row in _lrs(scheduler, optimizer, 100)]
    assert base[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert base[9] == pytest.approx(1.0)
    assert base[10 + 45] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert base[-1] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))
    state = scheduler.state_dict()
    torch.save(state, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    torch.load(buffer, weights_only=True)  # only numbers in the state


def test_plan_splits_global_batches_the_same_way_for_any_process_count():
    kwargs = dict(seed=3, epoch=2)
    single = plan_epoch([10], [1.0], batch_size=1, accumulate=4, world_size=1, rank=0, **kwargs)
    ranks = [plan_epoch([10], [1.0], batch_size=1, accumulate=2, world_size=2, rank=r, **kwargs) for r in (0, 1)]
    assert len(single) == 8  # 10 // 4 = 2 steps of 4 micro-batches
    for step in range(2):
        assert single[4 * step:4 * step + 4] == ranks[0][2 * step:2 * step + 2] + ranks[1][2 * step:2 * step + 2]
    assert plan_epoch([10], [1.0], batch_size=2, accumulate=1, world_size=1, rank=0, **kwargs) == \
        plan_epoch([10], [1.0], batch_size=2, accumulate=1, world_size=1, rank=0, **kwargs)
    assert plan_epoch([10], [1.0], batch_size=2, accumulate=1, world_size=1, rank=0, seed=3, epoch=3) != \
        plan_epoch([10], [1.0], batch_size=2, accumulate=1, world_size=1, rank=0, **kwargs)
    with pytest.raises(ValueError, match="smaller than one global batch"):
        plan_epoch([3], [1.0], batch_size=2, accumulate=1, world_size=2, rank=0, **kwargs)


def test_plan_mixes_datasets_by_ratio_in_single_dataset_batches():
    sizes, ratios = [40, 20, 10], [4.0, 2.0, 1.0]
    batches = plan_epoch(sizes, ratios, batch_size=5, accumulate=1, world_size=1, rank=0, seed=0, epoch=0)
    assert len(batches) == 70 // 5
    source = [0 if b[0] < 40 else 1 if b[0] < 60 else 2 for b in batches]
    assert [source.count(i) for i in range(3)] == [8, 4, 2]
    for batch, s in zip(batches, source):
        assert all((0 if i < 40 else 1 if i < 60 else 2) == s for i in batch)
    assert sorted(itertools.chain(*shard_indices_all(7, 3))) == list(range(7))


def shard_indices_all(size, world):
    return [shard_indices(size, r, world) for r in range(world)]


def test_step_schedule_and_adamw_eps():
    net = _Net()
    optimizer = build_optimizer(net, OptimConfig(name="adamw", lr=1e-4, eps=1e-15))
    assert optimizer.defaults["eps"] == 1e-15
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="step", step_size=3, gamma=0.8), total_steps=10)
    base = [row[0] for row in _lrs(scheduler, optimizer, 8)]
    assert base == pytest.approx([1e-4] * 3 + [0.8e-4] * 3 + [0.64e-4] * 2)
    with pytest.raises(ValueError, match="schedule 'step' needs step_size >= 1 and 0 < gamma <= 1"):
        build_scheduler(optimizer, ScheduleConfig(name="step", step_size=0), total_steps=10)
