"""Sparse-convolution benchmarks on a synthetic indoor room voxelized at 2 cm (~100k voxels), in
float32 on CPU and in float16 and bfloat16 on CUDA.

Cases (full configuration):
- per layer: SubM k3 at C = 32, 64, 96; the k5 stem (6 -> 32); k2 s2 down (32 -> 64); the inverse
  up (64 -> 32) of that down; each forward and forward+backward;
- end to end: a SpUNet-S-shaped stack (k5 stem, four k2 s2 stages 32-64-128-256-256 with two SubM
  k3 each, inverse-conv decoder with skip concatenation), forward and forward+backward.

Baselines, each timed in the same run as ppt:
- ``spconv 1 thread``: the spconv 2.x CPU wheel under ``torch.set_num_threads(1)``, the only
  setting in which spconv 2.3.8's CPU path gives correct sums (it races with more threads); it is
  also the correctness oracle of every case;
- ``spconv N threads``: spconv with torch's default thread count, timed only (its results race);
- ``torch.mm``: dense GEMMs with the same total FLOPs, giving the achieved fraction of the
  machine's GEMM rate (``extra`` holds both GFLOP/s; fwd+bwd counts 3x the forward FLOPs).
spconv 2.3.8's CPU backward asks for a CUDA stream; this suite patches
``spconv.pytorch.ops.get_current_stream`` to return 0 (stream 0) for the rest of the process. Without spconv
installed (``pip install -e .[bench]``) only the GEMM-rate rows run, a notice says so, and their check
is that two ppt runs agree bit for bit.
On CUDA the spconv baselines need the ``spconv-cu12x`` wheel and run with default threads.

Run: ``python -m bench.sparse_conv [--quick] [--device cpu|cuda] [--out DIR]`` or ``ppt bench``.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable

import torch
from torch import nn

import ppt.nn as pnn
from bench.harness import Comparison, compare
from ppt.data.synthetic import indoor_room
from ppt.ops import voxelize
from ppt.sparse import SparseTensor

SUITE = "sparse_conv"
VOXEL_SIZE = 0.02
ROOM_POINTS = {False: 108_000, True: 6_000}  # ~100k voxels at 2 cm (full), ~6k (quick smoke run)


def _spconv():
    if importlib.util.find_spec("spconv") is None:
        return None
    import spconv.pytorch as spconv_torch
    from spconv.pytorch import ops as spconv_ops

    spconv_ops.get_current_stream = lambda: 0  # CPU backward with a CPU-only torch (see module doc)
    return spconv_torch


@contextlib.contextmanager
def _threads(count: int | None):
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def room_sites(quick: bool, device: torch.device) -> tuple[torch.Tensor, list[int]]:
    coord = indoor_room(ROOM_POINTS[quick], seed=0)
    indices = voxelize(coord, VOXEL_SIZE)[0]
    shape = (indices[:, 1:].amax(0) + 1).tolist()
    return indices.to(device), shape


# ---------------------------------------------------------------------------------------------
# networks, built identically from ppt.nn or spconv.pytorch


class SingleLayer(nn.Module):
    def __init__(self, lib, make: Callable, parent: Callable | None = None):
        super().__init__()
        self.parent = parent(lib) if parent else None  # e.g. the down conv an inverse conv undoes
        self.layer = make(lib)

    def forward(self, x):
        if self.parent is not None:
            with torch.no_grad():
                x = self.parent(x)
            x = x.replace_feature(x.features.detach().requires_grad_(x.features.requires_grad))
        return self.layer(x)


class SpUNetS(nn.Module):
    """SpUNet-shaped stack: stem, 4 encoder stages (down + 2 SubM), 4 decoder stages (inverse up,
    skip concat, 2 SubM). Plain ReLU between convs so that both libraries run identical math."""

    def __init__(self, lib, in_channels: int = 6, channels=(32, 64, 128, 256, 256)):
        super().__init__()
        self.stem = lib.SubMConv3d(in_channels, channels[0], 5, bias=False, indice_key="stem")
        self.down, self.enc, self.up, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for s in range(len(channels) - 1):
            c_in, c_out = channels[s], channels[s + 1]
            self.down.append(lib.SparseConv3d(c_in, c_out, 2, stride=2, bias=False, indice_key=f"down{s}"))
            self.enc.append(nn.ModuleList([lib.SubMConv3d(c_out, c_out, 3, bias=False, indice_key=f"subm{s + 1}")
                                           for _ in range(2)]))
            self.up.append(lib.SparseInverseConv3d(c_out, c_in, 2, indice_key=f"down{s}", bias=False))
            self.dec.append(nn.ModuleList([lib.SubMConv3d(2 * c_in, c_in, 3, bias=False, indice_key=f"subm{s}"),
                                           lib.SubMConv3d(c_in, c_in, 3, bias=False, indice_key=f"subm{s}")]))

    @staticmethod
    def _relu(x):
        return x.replace_feature(torch.relu(x.features))

    def forward(self, x):
        x = self._relu(self.stem(x))
        skips = []
        for down, blocks in zip(self.down, self.enc):
            skips.append(x)
            x = self._relu(down(x))
            for block in blocks:
                x = self._relu(block(x))
        for s in reversed(range(len(self.down))):
            x = self._relu(self.up[s](x))
            x = x.replace_feature(torch.cat([x.features, skips[s].features], 1))
            for block in self.dec[s]:
                x = self._relu(block(x))
        return x


def _layer_specs():
    return {
        "subm k3 C=32": (32, lambda m: m.SubMConv3d(32, 32, 3, bias=False, indice_key="subm"), None),
        "subm k3 C=64": (64, lambda m: m.SubMConv3d(64, 64, 3, bias=False, indice_key="subm"), None),
        "subm k3 C=96": (96, lambda m: m.SubMConv3d(96, 96, 3, bias=False, indice_key="subm"), None),
        "stem subm k5 6->32": (6, lambda m: m.SubMConv3d(6, 32, 5, bias=False, indice_key="stem"), None),
        "down k2s2 32->64": (32, lambda m: m.SparseConv3d(32, 64, 2, stride=2, bias=False, indice_key="down"), None),
        "inverse up k2 64->32": (32, lambda m: m.SparseInverseConv3d(64, 32, 2, indice_key="down", bias=False),
                                 lambda m: m.SparseConv3d(32, 64, 2, stride=2, bias=False, indice_key="down")),
    }


# ---------------------------------------------------------------------------------------------
# FLOP counting from ppt's kernel maps


def conv_flops(model: nn.Module, x: SparseTensor) -> int:
    """2 * pairs * Cin * Cout summed over the ppt convolutions that one forward of ``model`` runs."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        x_in = inputs[0]
        if isinstance(module, pnn.SparseInverseConv3d):
            pairs = x_in.cache.find(module.indice_key).pairs.shape[1]
        else:
            pairs = module.kernel_map(x_in).pairs.shape[1]
        total += 2 * pairs * module.in_channels * module.out_channels

    convs = [m for m in model.modules() if isinstance(m, (pnn.SubMConv3d, pnn.SparseConv3d, pnn.SparseInverseConv3d))]
    if isinstance(model, SingleLayer):
        convs = [model.layer]
    handles = [m.register_forward_hook(count) for m in convs]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


# ---------------------------------------------------------------------------------------------


def _sorted_rows(indices: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    key = ((indices[:, 0].long() * 4096 + indices[:, 1]) * 4096 + indices[:, 2]) * 4096 + indices[:, 3]
    return features[torch.argsort(key)]


# ppt vs spconv on the same sites: both accumulate in float32, but sum in different orders.
_TOLERANCE = {torch.float32: 1e-3, torch.float16: 2e-2, torch.bfloat16: 8e-2}


def _check_same_sites(got, expected, tolerance: float):
    (got_indices, got_features), (want_indices, want_features) = got, expected
    torch.testing.assert_close(_sorted_rows(got_indices, got_features).float(),
                               _sorted_rows(want_indices, want_features).float(), rtol=tolerance, atol=tolerance)


def _runner(model, make_input, backward: bool):
    def run():
        x = make_input()
        y = model(x)
        if backward:
            y.features.square().sum().backward()
        return y.indices, y.features.detach()
    return run


def _compare_case(case: str, device, ours: nn.Module, make_ours, baselines: dict, flops: int, params: dict,
                  backward: bool, warmup: int, repeats: int, target: float | None,
                  tolerance: float) -> list[Comparison]:
    """``baselines``: name -> (run callable, torch threads or None, is_oracle). ppt's result is checked
    against the oracle's (spconv under one thread) before any timing."""
    candidate = _runner(ours, make_ours, backward)
    oracle, oracle_threads, _ = next(b for b in baselines.values() if b[2])
    with _threads(oracle_threads):
        expected = oracle()
    results = []
    for name, (baseline, threads, is_oracle) in baselines.items():
        def timed_baseline(baseline=baseline, threads=threads):
            with _threads(threads):
                return baseline()
        result = compare(suite=SUITE, case=case + (" fwd+bwd" if backward else " fwd"), device=device, params=params,
                         candidate=candidate, baseline=timed_baseline, baseline_name=name,
                         check=lambda got, _baseline: _check_same_sites(got, expected, tolerance),
                         warmup=warmup, repeats=repeats, target_speedup=target if is_oracle else None,
                         extra={"flops": flops * (3 if backward else 1)})
        result.extra["ppt_gflops"] = result.extra["flops"] / (result.ppt_ms / 1e3) / 1e9
        results.append(result)
    return results


def _check_deterministic(got, again):
    for a, b in zip(got, again):
        assert torch.equal(a, b), "ppt's sparse convolution must be bitwise deterministic"


def _gemm_baseline(case: str, device, flops: int, params: dict, dtype, warmup: int, repeats: int,
                   candidate) -> Comparison:
    """Dense GEMMs of the same total FLOPs: ``calls`` x ``(rows, 256) @ (256, 256)`` with rows <= 4096
    (cache-friendly operands whatever the FLOP count), so the speedup is ppt's fraction of the
    machine's GEMM rate. The check runs ppt twice and requires bitwise-equal results."""
    width = 256
    rows = int(min(4096, max(1, flops // (2 * width * width))))
    calls = max(1, round(flops / (2 * rows * width * width)))
    a = torch.randn(rows, width, device=device, dtype=dtype)
    b = torch.randn(width, width, device=device, dtype=dtype)
    out = torch.empty(rows, width, device=device, dtype=dtype)

    def gemms():
        for _ in range(calls):
            torch.mm(a, b, out=out)
        return out

    result = compare(suite=SUITE, case=case, device=device, params=params, candidate=candidate,
                     baseline=gemms, baseline_name="torch.mm same FLOPs",
                     check=lambda got, _mm: _check_deterministic(got, candidate()), warmup=warmup, repeats=repeats)
    result.extra.update(flops=flops, ppt_gflops=flops / (result.ppt_ms / 1e3) / 1e9,
                        mm_gflops=2 * calls * rows * width * width / (result.baseline_ms / 1e3) / 1e9)
    return result


def run(device: torch.device, quick: bool = False) -> list[Comparison]:
    repeats, warmup = (2, 1) if quick else (10, 2)
    # CPU: float32 (the CPU target); CUDA: float16 and bfloat16 with float32 accumulation.
    dtypes = [torch.float32] if device.type == "cpu" else [torch.float16, torch.bfloat16]
    spconv_torch = _spconv()
    if spconv_torch is None:
        print("spconv is not installed (pip install -e .[bench]): only the GEMM-rate comparisons run")
    indices, shape = room_sites(quick, device)
    num_sites = indices.shape[0]
    threads = torch.get_num_threads()
    cases = [(name, channels, _single_layer(make, parent)) for name, (channels, make, parent) in _layer_specs().items()]
    cases.append(("SpUNet-S stack", 6, SpUNetS))
    results: list[Comparison] = []
    for dtype in dtypes:
        dtype_name = str(dtype).replace("torch.", "")
        generator = torch.Generator().manual_seed(0)
        for case, channels, build in cases:
            ours = build(pnn).to(device=device, dtype=dtype)
            theirs = build(spconv_torch).to(device=device, dtype=dtype) if spconv_torch else None
            if theirs is not None:
                theirs.load_state_dict(ours.state_dict())
            features = torch.randn(num_sites, channels, generator=generator).to(device=device, dtype=dtype)

            def make_ours(backward, features=features):
                return lambda: SparseTensor(features.clone().requires_grad_(backward), indices, shape, 1)

            def make_theirs(backward, features=features):
                return lambda: spconv_torch.SparseConvTensor(features.clone().requires_grad_(backward), indices, shape, 1)

            flops = conv_flops(ours, make_ours(False)())
            params = dict(voxels=num_sites, spatial_shape=shape, voxel_size=VOXEL_SIZE, dtype=dtype_name,
                          threads=threads)
            is_stack = case == "SpUNet-S stack"
            for backward in (False, True):
                # Targets: CPU stack fwd and fwd+bwd >= 2x spconv; GPU stack fwd+bwd >= 1x.
                target = None
                if is_stack and device.type == "cpu":
                    target = 2.0
                elif is_stack and backward:
                    target = 1.0
                label = f"{case} {dtype_name}"
                if theirs is not None:
                    oracle_name = "spconv 1 thread" if device.type == "cpu" else "spconv"
                    baselines = {oracle_name: (_runner(theirs, make_theirs(backward), backward),
                                               1 if device.type == "cpu" else None, True)}
                    if device.type == "cpu" and threads > 1:
                        baselines[f"spconv {threads} threads (racy, timing only)"] = (
                            _runner(theirs, make_theirs(backward), backward), None, False)
                    results += _compare_case(label, device, ours, make_ours(backward), baselines, flops, params,
                                             backward, warmup, repeats, target, _TOLERANCE[dtype])
                results.append(_gemm_baseline(label + (" fwd+bwd" if backward else " fwd") + " vs GEMM rate", device,
                                              flops * (3 if backward else 1), params, dtype, warmup, repeats,
                                              _runner(ours, make_ours(backward), backward)))
    return results


def _single_layer(make, parent):
    return lambda lib: SingleLayer(lib, make, parent)


if __name__ == "__main__":
    import sys

    from bench.cli import main

    main([SUITE, *sys.argv[1:]])
