"""PointMLP train step on ppt's point ops against pure-torch ones (issue 23), a case of the ``models`` suite.

:class:`ppt.models.PointMLP` (the official ``pointMLP()``, 40 classes, 13.2M parameters) trains one
step (SGD 0.1 with momentum 0.9 and weight decay 2e-4, label smoothing 0.2, as the official
ModelNet40 script) on synthetic objects, with its groupings' farthest point sampling and kNN on
:mod:`ppt.ops` against the same model whose groupings run what pointMLP-pytorch's model file
offers users without ``pointnet2_ops``: its ``farthest_point_sample`` loop and ``knn_point``
(``square_distance`` by matrix product, then ``topk``), both written out below.

Correctness before timing: both models start from the same weights; the pure-torch sampling starts
at index 0 as ``pointnet2_ops`` and ppt do, so the anchors are the same, and the first step's
logits and loss (dropout drawn from the same seed) must agree. Target: ppt >= 2x at batch 32 x
1,024 points on CPU. A second case times the point ops of one forward alone (the 4 stages' FPS and
kNN; gate: the same samples, the same neighbourhoods): everything else in the step is the same
computation in both, so that case bounds what the ops can save.

Run: ``ppt bench models [--quick] [--device cpu|cuda] [--case PointMLP]``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppt.bench.harness import Baseline, Case
from ppt.models import PointMLP
from ppt.models.pointmlp import POINTMLP_ELITE, use_point_ops

__all__ = ["pointmlp_cases", "official_farthest_point_sample", "official_knn_point"]

POINTS = 1024
CLASSES = 40
TOLERANCE = 1e-3


def official_farthest_point_sample(xyz: Tensor, count: int) -> Tensor:
    """pointMLP-pytorch's ``farthest_point_sample`` (a Python loop over the samples), started at
    index 0 instead of a random one."""
    batch, n, _ = xyz.shape
    centroids = torch.zeros(batch, count, dtype=torch.long, device=xyz.device)
    distance = torch.full((batch, n), 1e10, device=xyz.device, dtype=xyz.dtype)
    farthest = torch.zeros(batch, dtype=torch.long, device=xyz.device)
    rows = torch.arange(batch, device=xyz.device)
    for i in range(count):
        centroids[:, i] = farthest
        distance = torch.minimum(distance, ((xyz - xyz[rows, farthest][:, None]) ** 2).sum(-1))
        farthest = distance.max(-1)[1]
    return centroids


def official_knn_point(query: Tensor, points: Tensor, k: int) -> Tensor:
    """pointMLP-pytorch's ``knn_point``: squared distances as ``-2 q·p + |q|² + |p|²``, then ``topk``."""
    dist = -2 * query @ points.transpose(1, 2)
    dist = dist + query.square().sum(-1)[..., None] + points.square().sum(-1)[:, None]
    return dist.topk(k, dim=-1, largest=False, sorted=False)[1]


def _train_step(model: nn.Module, points: Tensor, labels: Tensor) -> Callable[[], tuple[Tensor, Tensor]]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    calls = []

    def step() -> tuple[Tensor, Tensor]:
        calls.append(None)
        if len(calls) == 1:  # the gate's call: the same dropout masks in both models
            torch.manual_seed(0)
        optimizer.zero_grad(set_to_none=True)
        logits = model(points)
        loss = F.cross_entropy(logits, labels, label_smoothing=0.2)
        loss.backward()
        optimizer.step()
        return logits.detach(), loss.detach()
    return step


def _check_same(got, expected) -> None:
    torch.testing.assert_close(got[0], expected[0], rtol=TOLERANCE, atol=TOLERANCE)
    torch.testing.assert_close(got[1], expected[1], rtol=TOLERANCE, atol=TOLERANCE)


def _check_finite(got) -> None:
    assert bool(torch.isfinite(got[0]).all()) and bool(torch.isfinite(got[1])), "non-finite logits or loss"


def pointmlp_case(points: Tensor, labels: Tensor, repeats: int, warmup: int, **settings) -> Case:
    """The train step on ``points`` ``(B, N, 3)``; ``settings`` override :class:`ppt.models.PointMLP`'s
    defaults (``points`` is N)."""
    torch.manual_seed(0)
    ours = PointMLP(CLASSES, **{"points": points.shape[1], **settings}).to(points.device).train()
    theirs = use_point_ops(copy.deepcopy(ours), official_farthest_point_sample, official_knn_point)
    params = dict(batch=points.shape[0], points=points.shape[1], threads=torch.get_num_threads(),
                  parameters=sum(p.numel() for p in ours.parameters()))
    return Case(name="PointMLP train step", run=_train_step(ours, points, labels), check=_check_finite,
                baselines=[Baseline("pure-torch FPS/kNN (official model file)", _train_step(theirs, points, labels),
                                    check=_check_same, target=2.0 if points.device.type == "cpu" else None)],
                params=params, items=(points.shape[0], "objects"), warmup=warmup, repeats=repeats, cpu_memory=True)


def _grouping(sample: Callable, neighbours: Callable, xyz: Tensor, stages: list[tuple[int, int]]) -> Callable:
    """The sampling and kNN of a PointMLP forward: per stage ``(anchors, k)``, the anchors of the
    previous stage's points and their neighbours."""
    def run() -> list[tuple[Tensor, Tensor]]:
        points, out = xyz, []
        for anchors, k in stages:
            index = sample(points, anchors)
            centres = points.gather(1, index[..., None].expand(-1, -1, 3))
            out.append((index, neighbours(centres, points, k).sort(dim=-1).values))
            points = centres
        return out
    return run


def _check_same_groups(got, expected) -> None:
    for stage, ((index, groups), (want_index, want_groups)) in enumerate(zip(got, expected)):
        assert torch.equal(index, want_index), f"stage {stage}: the farthest point samples differ"
        agree = (groups == want_groups).all(dim=-1).float().mean().item()
        assert agree >= 0.999, f"stage {stage}: only {agree:.4f} of the neighbourhoods agree"


def grouping_case(points: Tensor, repeats: int, warmup: int) -> Case:
    """Only the point ops of one PointMLP forward (4 stages of FPS + kNN): the ceiling of what ppt's
    ops can save in the train step."""
    model = PointMLP(CLASSES, points=points.shape[1])
    stages = [(grouper.groups, grouper.k_neighbors) for grouper in model.local_grouper_list]
    ours = model.local_grouper_list[0]
    return Case(name="PointMLP sampling + kNN", run=_grouping(ours.sample, ours.neighbours, points, stages),
                baselines=[Baseline("pure-torch FPS/kNN (official model file)",
                                    _grouping(official_farthest_point_sample, official_knn_point, points, stages),
                                    check=_check_same_groups)],
                params=dict(batch=points.shape[0], points=points.shape[1], threads=torch.get_num_threads(),
                            stages=[list(stage) for stage in stages]),
                items=(points.shape[0], "objects"), warmup=warmup, repeats=repeats)


def pointmlp_cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    from ppt.bench.models import object_batch

    points, labels = object_batch(quick)  # the DAPT case's objects (2,048 points, random order): the first 1,024
    points, labels = points[:, :POINTS].to(device), labels.to(device)
    yield grouping_case(points, *((2, 1) if quick else (5, 1)))
    # --quick: PointMLP-elite's widths and blocks (the target is the full PointMLP's)
    yield pointmlp_case(points, labels, *((2, 1) if quick else (3, 1)), **(POINTMLP_ELITE if quick else {}))
