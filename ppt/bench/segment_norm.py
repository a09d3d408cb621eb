"""Segmented batch-norm benchmarks: ppt.ops.segment_batch_norm against what PPT code does instead.

- S=3 (a batch mixing three datasets): Pointcept-style list of ``torch.nn.BatchNorm1d``, one per
  dataset, with an index gather of each dataset's rows and an ``index_copy`` scatter back
- S=1: a single ``torch.nn.BatchNorm1d`` (the op must not cost more than plain batch norm)

Both sides run in training mode (batch statistics + running-stat update), forward only and
forward+backward, for N in {100k, 1M} points, C in {32, 64, 96, 128, 256}. Each case also reports
the minimum bytes the fused kernels must move, so the report gives the fraction of the device's
copy bandwidth (measured at the start of the run) this achieves.

Run: ``ppt bench segment_norm [--quick] [--device cpu|cuda]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ppt.bench.harness import Baseline, Case
from ppt.ops import segment_batch_norm

SUITE = "segment_norm"
SUPPORTED_DTYPES = ("float32",)
POINTS = (100_000, 1_000_000)
CHANNELS = (32, 64, 96, 128, 256)
SEGMENTS = (1, 3)
SCENES_PER_BATCH = 8
MOMENTUM, EPS = 0.1, 1e-5
# Targets of the issue: mixed batches >= 3x the gather/BatchNorm1d/scatter composition (fwd+bwd);
# one segment within 1.2x of BatchNorm1d; >= 70% of copy bandwidth for N=1M, C=96 forward on GPU.
MIXED_TARGET = 3.0
SINGLE_TARGET = 1 / 1.2
BANDWIDTH_TARGET = 0.7


def mixed_batch_segments(num_points: int, num_segments: int, device: torch.device) -> torch.Tensor:
    """Dataset id per point of a batch of scenes concatenated in loader order (datasets interleave by scene)."""
    scene = torch.arange(num_points, device=device) * SCENES_PER_BATCH // num_points
    return scene % num_segments


class GatherBatchNormScatter(nn.Module):
    """Pointcept's per-dataset BatchNorm1d, generalized to mixed batches by gathering each dataset's
    rows, normalizing them with that dataset's BatchNorm1d and scattering the result back."""

    def __init__(self, channels: int, num_segments: int):
        super().__init__()
        self.bns = nn.ModuleList(nn.BatchNorm1d(channels, eps=EPS, momentum=MOMENTUM) for _ in range(num_segments))

    def forward(self, x: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        for s, bn in enumerate(self.bns):
            rows = torch.nonzero(segment == s).squeeze(1)
            out = out.index_copy(0, rows, bn(x.index_select(0, rows)))
        return out


def _bytes_moved(num_points: int, channels: int, element_size: int, backward: bool) -> int:
    """Minimum traffic of the fused kernels: forward reads x twice (stats, apply) and writes y;
    backward reads dy and x twice (reduce, input grad) and writes dx; every pass reads the ids."""
    tensor = num_points * channels * element_size
    ids = num_points * 8
    forward = 3 * tensor + 2 * ids
    return forward + (5 * tensor + 2 * ids if backward else 0)


def _case(device, num_points, channels, num_segments, backward, warmup, repeats) -> Case:
    x = torch.randn(num_points, channels, device=device)
    grad_out = torch.randn_like(x)
    segment = mixed_batch_segments(num_points, num_segments, device)
    weight = torch.rand(num_segments, channels, device=device) + 0.5
    bias = torch.randn(num_segments, channels, device=device)
    running_mean = torch.zeros(num_segments, channels, device=device)
    running_var = torch.ones(num_segments, channels, device=device)
    if num_segments == 1:
        baseline_module, baseline_name = nn.BatchNorm1d(channels, eps=EPS, momentum=MOMENTUM).to(device), "BatchNorm1d"
        with torch.no_grad():
            baseline_module.weight.copy_(weight[0]), baseline_module.bias.copy_(bias[0])
        run_baseline_module = lambda inp: baseline_module(inp)  # noqa: E731
    else:
        baseline_module = GatherBatchNormScatter(channels, num_segments).to(device)
        baseline_name = "gather+BatchNorm1d+scatter"
        with torch.no_grad():
            for s, bn in enumerate(baseline_module.bns):
                bn.weight.copy_(weight[s]), bn.bias.copy_(bias[s])
        run_baseline_module = lambda inp: baseline_module(inp, segment)  # noqa: E731
    weight.requires_grad_(backward), bias.requires_grad_(backward)
    x_ppt = x.clone().requires_grad_(backward)
    x_base = x.clone().requires_grad_(backward)

    def candidate():
        y = segment_batch_norm(x_ppt, segment, num_segments, running_mean, running_var, weight, bias, True,
                               MOMENTUM, EPS)
        if not backward:
            return y
        x_ppt.grad = weight.grad = bias.grad = None
        y.backward(grad_out)
        return x_ppt.grad

    def baseline():
        y = run_baseline_module(x_base)
        if not backward:
            return y
        x_base.grad = None
        baseline_module.zero_grad(set_to_none=True)
        y.backward(grad_out)
        return x_base.grad

    def check(got, expected):
        torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)

    mode = "fwd+bwd" if backward else "fwd"
    if num_segments == 1:
        target = SINGLE_TARGET
    else:
        target = MIXED_TARGET if backward else None
    bandwidth_case = device.type == "cuda" and num_points == 1_000_000 and channels == 96 and not backward
    return Case(
        name=f"{mode} N={num_points} C={channels} S={num_segments}", run=candidate,
        baselines=[Baseline(baseline_name, baseline, check=check, target=target)],
        params=dict(points=num_points, channels=channels, segments=num_segments, mode=mode),
        bytes=_bytes_moved(num_points, channels, x.element_size(), backward), items=(num_points, "points"),
        warmup=warmup, repeats=repeats, ceiling_target=BANDWIDTH_TARGET if bandwidth_case else None)


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    return SUPPORTED_DTYPES


def cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    if quick:
        points, channels, repeats, warmup = (200_000,), (32, 96), 3, 1
    else:
        points, channels, repeats, warmup = POINTS, CHANNELS, 10, 3
    for num_points in points:
        for num_channels in channels:
            for num_segments in SEGMENTS:
                for backward in (False, True):
                    yield _case(device, num_points, num_channels, num_segments, backward, warmup, repeats)
