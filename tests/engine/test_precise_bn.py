"""Precise BN statistics (ppt.engine.precise_bn): the running statistics of all the batches
together, per PDNorm condition, weights untouched; in the trainer without changing training."""

import copy
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch import nn

from ppt.engine import load_recipe, train
from ppt.engine.precise_bn import _RowMoments, recompute_bn_statistics
from ppt.nn import PDNorm


def _batches(sizes, channels, seed, offset=3.0):
    generator = torch.Generator().manual_seed(seed)
    # batches of different sizes and means: a plain average of per-batch statistics would be wrong
    return [torch.randn(size, channels, generator=generator, dtype=torch.float64) * (1 + i) + offset * i
            for i, size in enumerate(sizes)]


def _inputs_of(module, model, batches):
    """What ``module`` receives when ``model`` runs each batch in training mode."""
    seen = []
    handle = module.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        for batch in batches:
            model(batch)
    handle.remove()
    return torch.cat(seen)


def test_batch_norm_statistics_equal_one_large_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(5), nn.Linear(5, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 3)).double().eval()
    batches = _batches([7, 30, 12], 5, seed=1)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    tracked = [model[0].num_batches_tracked.clone(), model[3].num_batches_tracked.clone()]
    probe = copy.deepcopy(model).train()

    used = recompute_bn_statistics(model, iter(batches), model, num_batches=3)

    assert used == 3 and not model.training  # the mode is restored
    # the first norm sees the batches themselves: torch's BN over one concatenated batch, momentum 1
    large = nn.BatchNorm1d(5, momentum=1.0).double().train()
    large(torch.cat(batches))
    torch.testing.assert_close(model[0].running_mean, large.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model[0].running_var, large.running_var, rtol=1e-12, atol=1e-12)
    # the second sees what the layers before it give in training mode (batch statistics)
    inputs = _inputs_of(probe[3], probe, batches)
    torch.testing.assert_close(model[3].running_mean, inputs.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model[3].running_var, inputs.var(0, unbiased=True), rtol=1e-12, atol=1e-12)
    # nothing else changed
    for key, value in weights.items():
        if "num_batches_tracked" not in key:
            torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert torch.equal(model[0].num_batches_tracked, tracked[0]) and torch.equal(model[3].num_batches_tracked, tracked[1])


def test_num_batches_limits_the_batches_used():
    norm = nn.BatchNorm1d(3).double()
    batches = _batches([10, 10, 10, 10], 3, seed=2)
    assert recompute_bn_statistics(norm, iter(batches), norm, num_batches=2) == 2
    torch.testing.assert_close(norm.running_mean, torch.cat(batches[:2]).mean(0), rtol=1e-12, atol=1e-12)
    assert recompute_bn_statistics(norm, iter(batches[:1]), norm, num_batches=5) == 1  # fewer: all there are
    with pytest.raises(ValueError, match="num_batches must be >= 1, got 0"):
        recompute_bn_statistics(norm, iter(batches), norm, num_batches=0)


def test_batch_norm_2d_statistics_over_batch_and_pixels():
    norm = nn.BatchNorm2d(3).double()
    generator = torch.Generator().manual_seed(3)
    batches = [torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64) + i for i in range(3)]
    recompute_bn_statistics(norm, iter(batches), norm, num_batches=3)
    rows = torch.cat([b.permute(0, 2, 3, 1).reshape(-1, 3) for b in batches])
    torch.testing.assert_close(norm.running_mean, rows.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(norm.running_var, rows.var(0), rtol=1e-12, atol=1e-12)


def test_pdnorm_rows_see_only_their_condition():
    conditions = ("Structured3D", "ScanNet", "S3DIS")
    norm = PDNorm(4, conditions, context_channels=6).double()
    prompts = torch.randn(3, 6, dtype=torch.float64)
    generator = torch.Generator().manual_seed(4)
    features = [torch.randn(n, 4, generator=generator, dtype=torch.float64) * (c + 1) + 5 * c
                for n, c in ((20, 0), (9, 2), (15, 0), (11, 2))]
    # two single-condition batches and a mixed one (per-point ids); ScanNet (row 1) never appears
    batches = [(features[0], "Structured3D"), (features[1], 2),
               (torch.cat(features[2:]), torch.tensor([0] * 15 + [2] * 11))]
    before = norm.running_mean[1].clone(), norm.running_var[1].clone()

    recompute_bn_statistics(norm, iter(batches), lambda batch: norm(batch[0], batch[1], prompts), num_batches=3)

    for row, parts in ((0, [features[0], features[2]]), (2, [features[1], features[3]])):
        rows = torch.cat(parts)
        torch.testing.assert_close(norm.running_mean[row], rows.mean(0), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(norm.running_var[row], rows.var(0), rtol=1e-12, atol=1e-12)
    assert torch.equal(norm.running_mean[1], before[0]) and torch.equal(norm.running_var[1], before[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _merge_on_rank(rank, port, parts, result):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        moments = _RowMoments(2, 3, torch.device("cpu"))
        for values, rows in parts[rank]:
            moments.add(values, rows)
        moments.all_reduce()
        result[rank] = (moments.count.clone(), moments.mean.clone(), moments.squares.clone())
    finally:
        dist.destroy_process_group()


def test_statistics_of_two_processes_equal_one_process_over_all_batches():
    generator = torch.Generator().manual_seed(5)
    parts = [[(torch.randn(n, 3, generator=generator, dtype=torch.float64) + shift,
               torch.randint(0, 2, (n,), generator=generator)) for n, shift in sizes]
             for sizes in (((8, 0.0), (13, 4.0)), ((5, -2.0), (21, 1.0)))]
    result = mp.Manager().dict()
    mp.spawn(_merge_on_rank, args=(_free_port(), parts, result), nprocs=2)
    alone = _RowMoments(2, 3, torch.device("cpu"))
    for values, rows in parts[0] + parts[1]:
        alone.add(values, rows)
    for rank in range(2):
        count, mean, squares = result[rank]
        torch.testing.assert_close(count, alone.count, rtol=0, atol=0)
        torch.testing.assert_close(mean, alone.mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(squares, alone.squares, rtol=1e-12, atol=1e-12)


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_trainer_recomputes_statistics_without_changing_training(tmp_path, scene_overrides, run_ppt):
    overrides = [*scene_overrides, "train.steps=3", "train.eval_every=1"]
    plain = train(load_recipe("spunet-scannet", overrides), tmp_path / "plain", progress=False)
    assert run_ppt(["train", "spunet-scannet", "--out", str(tmp_path / "precise")],
                   sets=[*overrides, "train.precise_bn_batches=2"]) == 0
    # the statistics pass draws its own batches and random numbers: the training is the same run
    losses = [r["loss"] for r in _log(tmp_path / "precise") if "loss" in r]
    assert losses == pytest.approx(plain.losses, rel=1e-6, abs=1e-7)
    a, b = load_file(tmp_path / "plain" / "last.safetensors"), load_file(tmp_path / "precise" / "last.safetensors")
    statistics = [key for key in a if key.endswith(("running_mean", "running_var"))]
    assert statistics and any(not torch.allclose(a[key], b[key]) for key in statistics)
    assert all(torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-7) for key in a if key not in statistics)


def test_negative_batch_count_is_a_config_error(tmp_path, scene_overrides, run_ppt, capsys):
    assert run_ppt(["train", "spunet-scannet", "--out", str(tmp_path / "run")],
                   sets=[*scene_overrides, "train.precise_bn_batches=-1"]) == 2
    assert "train.precise_bn_batches must be >= 0 (0: off), got -1" in capsys.readouterr().err
