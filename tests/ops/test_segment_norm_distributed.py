"""segment_batch_norm(sync=True) over 2 gloo processes equals one process on the concatenated batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ppt.nn import PDNorm
from ppt.ops import _reference as ref
from ppt.ops import segment_batch_norm

NUM_SEGMENTS = 4
SPLIT = 37  # rank 0 holds rows [0, SPLIT), rank 1 the rest: unequal shards


def _data():
    gen = torch.Generator().manual_seed(7)
    n, channels = 100, 5
    x = torch.randn(n, channels, generator=gen, dtype=torch.float64) * 3 + 2
    segment = torch.randint(0, 2, (n,), generator=gen)
    segment[SPLIT:SPLIT + 20] = 2  # segment 2 lives on rank 1 only
    segment[5] = 3                  # segment 3 has one row per rank: too few locally, enough globally
    segment[SPLIT + 30] = 3
    grad_out = torch.randn(n, channels, generator=gen, dtype=torch.float64)
    tables = {name: torch.randn(NUM_SEGMENTS, channels, generator=gen, dtype=torch.float64)
              for name in ("weight", "bias", "running_mean")}
    tables["running_var"] = torch.rand(NUM_SEGMENTS, channels, generator=gen, dtype=torch.float64) + 0.5
    return x, segment, grad_out, tables


def _step(x, segment, grad_out, tables, sync):
    x = x.clone().requires_grad_(True)
    weight = tables["weight"].clone().requires_grad_(True)
    bias = tables["bias"].clone().requires_grad_(True)
    running_mean, running_var = tables["running_mean"].clone(), tables["running_var"].clone()
    y = segment_batch_norm(x, segment, NUM_SEGMENTS, running_mean, running_var, weight, bias, True, 0.1, 1e-5,
                           sync=sync)
    y.backward(grad_out)
    return dict(y=y.detach(), grad_x=x.grad, grad_weight=weight.grad, grad_bias=bias.grad,
                running_mean=running_mean, running_var=running_var)


def _pdnorm_step(x, segment, grad_out, rows, sync):
    """PDNorm (adaptive, mixed domains) on `rows` of the batch; parameter grads returned by name."""
    torch.manual_seed(11)
    norm = PDNorm(x.shape[1], ("a", "b", "c", "d"), context_channels=3, zero_init=False, sync=sync).double()
    context = torch.randn(NUM_SEGMENTS, 3, dtype=torch.float64)
    x = x[rows].clone().requires_grad_(True)
    y = norm(x, segment[rows], context)
    y.backward(grad_out[rows])
    result = dict(y=y.detach(), grad_x=x.grad, running_mean=norm.running_mean, running_var=norm.running_var)
    result.update({f"grad.{name}": p.grad for name, p in norm.named_parameters()})
    return result


def _worker(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        x, segment, grad_out, tables = _data()
        rows = slice(0, SPLIT) if rank == 0 else slice(SPLIT, None)
        result = _step(x[rows], segment[rows], grad_out[rows], tables, sync=True)
        # Parameter grads are per-rank partial sums (DDP would all-reduce them).
        for name in ("grad_weight", "grad_bias"):
            dist.all_reduce(result[name])
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
        module_result = _pdnorm_step(x, segment, grad_out, rows, sync=True)
        for name in module_result:
            if name.startswith("grad."):
                dist.all_reduce(module_result[name])
        torch.save(module_result, os.path.join(out_dir, f"pdnorm_rank{rank}.pt"))
        # Double backward through all-reduced statistics is not implemented: the create_graph
        # backward raises on every rank before any collective.
        x = x[rows].clone().requires_grad_(True)
        y = segment_batch_norm(x, segment[rows], NUM_SEGMENTS, training=True, sync=True)
        try:
            torch.autograd.grad(y.sum(), x, create_graph=True)
            message = ""
        except RuntimeError as error:
            message = str(error)
        with open(os.path.join(out_dir, f"create_graph_rank{rank}.txt"), "w") as file:
            file.write(message)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this torch build")
def test_two_process_sync_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    x, segment, grad_out, tables = _data()
    single = _step(x, segment, grad_out, tables, sync=False)
    expected = ref.segment_batch_norm(x, segment, NUM_SEGMENTS, tables["running_mean"].clone(),
                                      tables["running_var"].clone(), tables["weight"], tables["bias"], True, 0.1, 1e-5)
    torch.testing.assert_close(single["y"], expected, atol=1e-12, rtol=1e-12)
    for name in ("y", "grad_x"):
        torch.testing.assert_close(torch.cat([ranks[0][name], ranks[1][name]]), single[name], atol=1e-12, rtol=1e-12)
    for name in ("grad_weight", "grad_bias", "running_mean", "running_var"):
        for rank in ranks:
            torch.testing.assert_close(rank[name], single[name], atol=1e-12, rtol=1e-12)

    for rank in range(2):
        message = (tmp_path / f"create_graph_rank{rank}.txt").read_text()
        assert message.startswith("segment_batch_norm: double backward (create_graph=True) is not implemented with "
                                  "sync=True across processes"), message

    module_ranks = [torch.load(tmp_path / f"pdnorm_rank{r}.pt", weights_only=True) for r in range(2)]
    module_single = _pdnorm_step(x, segment, grad_out, slice(None), sync=False)
    for name in ("y", "grad_x"):
        torch.testing.assert_close(torch.cat([module_ranks[0][name], module_ranks[1][name]]), module_single[name],
                                   atol=1e-12, rtol=1e-12)
    for name, value in module_single.items():
        if name not in ("y", "grad_x"):
            for rank in module_ranks:
                torch.testing.assert_close(rank[name], value, atol=1e-12, rtol=1e-12)


def test_sync_without_process_group_is_local():
    x, segment, grad_out, tables = _data()
    assert not dist.is_initialized()
    local = _step(x, segment, grad_out, tables, sync=True)
    torch.testing.assert_close(local["y"], _step(x, segment, grad_out, tables, sync=False)["y"], rtol=0, atol=0)
