"""Contention benchmarks: ppt's CPU kernels on a machine where another process keeps a core busy.

Each case is one op family's call, run with torch's thread count (the default, or ``--threads``)
while one busy process (a Python spin loop, started before the case's correctness check and
stopped after its last round) competes for the cores. The baseline is the same call under one
thread, timed in the same rounds, under the same busy process. Target: at most 1.2x the
one-thread time (speedup >= 0.833x). A kernel whose threads wait for each other (a parallel loop
ends only when its slowest thread does) stalls whenever one of its threads is descheduled; more
threads must never make a call slower than one thread, even when a core is taken.

Cases (inputs of a training step; the ops through their public functions, forward and backward):
- point ops: voxelize 200k points (four synthetic rooms, 2 cm); FPS 32 x 2048 -> 128 (clouds in
  parallel) and 1 x 32768 -> 256 (one cloud: a short parallel loop per sample); kNN 32 x 128
  queries into 2048, k = 32;
- sparse convolution: the submanifold k3 kernel map of a ~30k-voxel room; a SubM k3 convolution
  with 64 channels on that map, forward+backward; max pooling k2 s2, forward+backward;
- segmented batch norm: N = 200k, C = 32, three datasets, training, forward+backward;
- rasterizer: 8 object scenes x 4 cameras at 128 x 128, 1024 Gaussians, forward+backward.

The correctness gate requires the result to agree run to run and with the one-thread result
(within 1e-4: reductions may be split differently with another thread count). Each result's ``params`` record the busy processes, the 1-minute load average when they
started and the CPU time they got per second (``busy_cpu_per_second``, Linux). CPU only.

Run: ``ppt bench contention [--quick] [--threads N]``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ppt.bench.harness import Baseline, Case, Unavailable, torch_threads
from ppt.bench.raster import Workload, make_inputs, ppt_step
from ppt.bench.segment_norm import mixed_batch_segments
from ppt.data.synthetic import indoor_room, object_clouds
from ppt.ops import farthest_point_sample, knn, segment_batch_norm, sparse_conv, sparse_kernel_map, sparse_max_pool
from ppt.ops import voxelize

SUITE = "contention"
SUPPORTED_DTYPES = ("float32",)
DEVICES = ("cpu",)
TARGET = 1 / 1.2  # the call with all threads takes at most 1.2x its one-thread time
BUSY_PROCESSES = 1
VOXEL_SIZE = 0.02


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    return SUPPORTED_DTYPES


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux's /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[dict]:
    """``count`` processes that each keep one core busy (a Python spin loop) while the block runs.

    Yields a dict that is complete when the block exits: ``busy_processes``, ``load_average_1min``
    when they started (None where the OS has none) and ``busy_cpu_per_second``, the CPU seconds
    they got per second of the block (near ``count`` when they got their cores; None without /proc).
    """
    observed: dict = {"busy_processes": count,
                      "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    spin = "print('running', flush=True)\nwhile True:\n    pass\n"
    processes = [subprocess.Popen([sys.executable, "-c", spin], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
                 for _ in range(count)]
    start = time.monotonic()
    try:
        for process in processes:
            process.stdout.readline()  # started: its loop is running
        yield observed
    finally:
        used = [_cpu_seconds(p.pid) for p in processes]
        elapsed = time.monotonic() - start
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()
            process.stdout.close()
        observed["busy_cpu_per_second"] = None if None in used else sum(used) / elapsed


def _outputs(value) -> list[torch.Tensor]:
    """The tensors of a call's result, flattened (tuples and lists of tensors or None)."""
    if isinstance(value, torch.Tensor):
        return [value.detach()]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _outputs(item)]
    return []


def _check_same(got, expected) -> None:
    got, expected = _outputs(got), _outputs(expected)
    assert len(got) == len(expected), f"{len(got)} outputs against {len(expected)}"
    for a, b in zip(got, expected):
        # a sum over 200k rows may round differently when threads split it differently
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def _case(name: str, run: Callable, params: dict, items: tuple[float, str], quick: bool) -> Case:
    """``run`` at torch's thread count against itself under one thread, with a busy process."""
    threads = torch.get_num_threads()
    if threads > 1:
        def one_thread():
            with torch_threads(1):
                return run()
        baseline = Baseline("1 thread", one_thread, check=_check_same, target=TARGET)
    else:
        baseline = Unavailable("1 thread", "torch runs 1 thread here (--threads 1 or a 1-core machine): "
                                           "nothing to compare")
    repeats, warmup = (5, 1) if quick else (15, 2)
    return Case(name=name, run=run, check=lambda got: _check_same(got, run()), baselines=[baseline],
                params=dict(params, threads=threads), items=items, warmup=warmup, repeats=repeats,
                condition=lambda: busy_processes(BUSY_PROCESSES))


def _with_grads(fn: Callable, leaves: list[torch.Tensor], generator: torch.Generator) -> Callable:
    """Forward ``fn(*leaves)`` and backward of a fixed random output gradient (drawn here, not in the
    timed call): the output and the leaves' gradients."""
    with torch.no_grad():
        grad_out = torch.randn(fn(*leaves).shape, generator=generator)

    def run():
        inputs = [leaf.detach().requires_grad_() for leaf in leaves]
        out = fn(*inputs)
        out.backward(grad_out)
        return out, [leaf.grad for leaf in inputs]
    return run


def cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    if device.type not in DEVICES:
        return
    generator = torch.Generator().manual_seed(0)

    scenes, points = 4, 200_000
    coord = torch.cat([indoor_room(points // scenes, seed=s) for s in range(scenes)])
    batch = torch.arange(scenes).repeat_interleave(points // scenes)
    yield _case(f"voxelize N={points} 2cm", lambda: voxelize(coord, VOXEL_SIZE, batch),
                dict(points=points, scenes=scenes), (points, "points"), quick)

    clouds = object_clouds(32, 2048)
    yield _case("fps B=32 N=2048 S=128", lambda: farthest_point_sample(clouds, 128),
                dict(batches=32, points=2048, samples=128), (32, "clouds"), quick)
    big_cloud = indoor_room(32768, seed=4)[None]
    yield _case("fps B=1 N=32768 S=256", lambda: farthest_point_sample(big_cloud, 256),
                dict(batches=1, points=32768, samples=256), (1, "clouds"), quick)
    centres = clouds[:, :128]
    yield _case("knn B=32 M=128 N=2048 k=32", lambda: knn(centres, clouds, 32),
                dict(batches=32, queries=128, points=2048, k=32), (32 * 128, "queries"), quick)

    sites = voxelize(indoor_room(32_000, seed=5), VOXEL_SIZE)[0]
    shape = (sites[:, 1:].amax(0) + 1).tolist()
    num_sites = sites.shape[0]
    yield _case("kernel map subm k3", lambda: sparse_kernel_map(sites, 1, shape, 3, submanifold=True),
                dict(voxels=num_sites), (num_sites, "voxels"), quick)
    _, pairs, pair_offsets = sparse_kernel_map(sites, 1, shape, 3, submanifold=True)
    features = torch.randn(num_sites, 64, generator=generator)
    weight = torch.randn(64, 27, 64, generator=generator) / 40
    yield _case("subm k3 C=64 fwd+bwd",
                _with_grads(lambda f, w: sparse_conv(f, w, pairs, pair_offsets, num_sites), [features, weight],
                            generator),
                dict(voxels=num_sites, channels=64), (num_sites, "voxels"), quick)
    pooled, pool_pairs, pool_offsets = sparse_kernel_map(sites, 1, shape, 2, stride=2)
    yield _case("max pool k2s2 C=64 fwd+bwd",
                _with_grads(lambda f: sparse_max_pool(f, pool_pairs, pool_offsets, pooled.shape[0]), [features],
                            generator),
                dict(voxels=num_sites, channels=64), (num_sites, "voxels"), quick)

    rows, channels, datasets = 200_000, 32, 3
    x = torch.randn(rows, channels, generator=generator)
    segment = mixed_batch_segments(rows, datasets, device)
    affine = [torch.rand(datasets, channels, generator=generator) + 0.5, torch.randn(datasets, channels, generator=generator)]
    yield _case(f"segment BN N={rows} C={channels} S={datasets} fwd+bwd",
                _with_grads(lambda x_, w, b: segment_batch_norm(x_, segment, datasets, weight=w, bias=b, training=True),
                            [x, *affine], generator),
                dict(points=rows, channels=channels, segments=datasets), (rows, "points"), quick)

    workload = Workload("object", 8, 4, 128, 128, 1024)
    gaussians = make_inputs(workload, device)
    yield _case("rasterize object fwd+bwd 32 images", lambda: ppt_step(workload, gaussians, True),
                dict(scenes=8, cams=4, width=128, height=128, gaussians=1024), (32, "images"), quick)
