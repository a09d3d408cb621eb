"""FLOPs and achieved GFLOP/s of every sparse convolution in one SpUNet-S forward on the LiDAR sweep
of ``ppt bench models`` (one thread), next to torch's GEMM rate on a 2048^3 product measured in the
same process. docs/benchmarks.md "Outdoor: a LiDAR sweep".

    OMP_NUM_THREADS=1 python bench/results/cpu-outdoor/conv_flops.py > bench/results/cpu-outdoor/conv_flops.txt
"""

import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ppt.bench.models import SWEEP_CLASSES, sweep_batch
from ppt.models import SpUNet
from ppt.sparse import SparseTensor

torch.set_num_threads(1)
CONV = torch.ops.ppt.sparse_conv.default


class TimeConvolutions(TorchDispatchMode):
    """Records (C_out, offsets, C_in, pairs, seconds) of every ppt sparse convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is not CONV:
            return func(*args, **(kwargs or {}))
        started = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        weight, pairs = args[1], args[2]
        self.rows.append((*weight.shape, pairs.shape[-1], time.perf_counter() - started))
        return out


def gemm_gflops(size: int = 2048, rounds: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(rounds):
        a @ b
    return rounds * 2 * size**3 / (time.perf_counter() - started) / 1e9


batch = sweep_batch(False)
sites = batch.sparse_tensor()
model = SpUNet(in_channels=batch.feat.shape[1], num_classes=SWEEP_CLASSES).train()
timer = TimeConvolutions()
with torch.no_grad(), timer:
    model(SparseTensor(batch.feat, sites.indices, batch_size=1))
print(f"voxels {sites.indices.shape[0]}; torch GEMM 2048^3 on one thread: {gemm_gflops():.1f} GFLOP/s")
total_flops = total_seconds = 0.0
for c_out, offsets, c_in, pairs, seconds in timer.rows:
    flops = 2 * pairs * c_in * c_out
    total_flops, total_seconds = total_flops + flops, total_seconds + seconds
    print(f"C_in {c_in:4d} -> C_out {c_out:4d}, {offsets:3d} offsets, {pairs:8d} pairs: {seconds * 1e3:7.1f} ms, "
          f"{flops / seconds / 1e9:5.1f} GFLOP/s")
print(f"forward convolutions: {total_flops / 1e9:.1f} GFLOP in {total_seconds:.2f} s = "
      f"{total_flops / total_seconds / 1e9:.1f} GFLOP/s; torch GEMM again: {gemm_gflops():.1f} GFLOP/s")
