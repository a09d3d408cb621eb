"""Point-op benchmarks: ppt kernels against the plain-PyTorch code people write instead.

- voxelize vs the pure-torch reference: per-scene minimum by ``scatter_reduce`` then
  ``torch.unique(dim=0, return_inverse=True, return_counts=True)`` on (b, x, y, z) rows
- farthest_point_sample vs the vectorized torch loop of Point-MAE / PointNet++ (pure torch)
- knn vs ``torch.cdist`` + ``topk``
- serialization (PTv3's four orders of a voxelized batch) vs the pure-torch encoder of
  :mod:`ppt.ops._reference` (bit loops over the levels, as Pointcept's encoders are torch code)

Run: ``ppt bench point_ops [--quick] [--device cpu|cuda]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ppt.bench.harness import Baseline, Case
from ppt.data.synthetic import indoor_room, object_clouds
from ppt.ops import _reference as ref
from ppt.ops import farthest_point_sample, knn, serialization_encode, voxelize
from ppt.ops.serialization import ORDERS, serialization_depth

SUITE = "point_ops"
SUPPORTED_DTYPES = ("float32",)


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    return SUPPORTED_DTYPES


def torch_loop_fps(xyz: torch.Tensor, num_samples: int) -> torch.Tensor:
    batches, n, _ = xyz.shape
    centroids = torch.zeros(batches, num_samples, dtype=torch.long, device=xyz.device)
    distance = torch.full((batches, n), float("inf"), device=xyz.device)
    farthest = torch.zeros(batches, dtype=torch.long, device=xyz.device)
    rows = torch.arange(batches, device=xyz.device)
    for i in range(num_samples):
        centroids[:, i] = farthest
        centroid = xyz[rows, farthest][:, None, :]
        distance = torch.minimum(distance, torch.sum((xyz - centroid) ** 2, -1))
        farthest = torch.max(distance, -1)[1]
    return centroids


def cdist_topk_knn(query: torch.Tensor, points: torch.Tensor, k: int):
    dist2 = torch.cdist(query, points).square()
    return torch.topk(dist2, k, dim=-1, largest=False, sorted=True)


def _check_equal(got, expected):
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _voxelize_bytes(num_points: int, num_voxels: int) -> int:
    """Least traffic: read float32 coordinates and int64 batch ids, write int64 inverse, int32
    (b, x, y, z) voxel coordinates and int64 counts."""
    return num_points * (12 + 8 + 8) + num_voxels * (16 + 8)


def cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    repeats, warmup = (5, 1) if quick else (15, 3)

    # voxelize: a 2 cm grid over an indoor scan, four scenes per batch like a training step.
    num_points = 200_000 if quick else 1_000_000
    scenes = 4
    coord = torch.cat([indoor_room(num_points // scenes, seed=s) for s in range(scenes)]).to(device)
    batch = torch.arange(scenes, device=device).repeat_interleave(num_points // scenes)
    voxel_size = 0.02
    num_voxels = voxelize(coord, voxel_size, batch)[0].shape[0]
    yield Case(
        name=f"voxelize N={num_points} 2cm",
        run=lambda: voxelize(coord, voxel_size, batch),
        baselines=[Baseline("torch.unique (reference)", lambda: ref.voxelize(coord, voxel_size, batch),
                            check=_check_equal, target=3.0)],
        params=dict(points=num_points, scenes=scenes, voxel_size=voxel_size, voxels=num_voxels),
        bytes=_voxelize_bytes(num_points, num_voxels), items=(num_points, "points"),
        warmup=warmup, repeats=repeats)

    # serialization: the four PTv3 orders of that batch's voxels (depth from the grid, as PTv3 does).
    voxels = voxelize(coord, voxel_size, batch)[0]
    grid, scene = voxels[:, 1:], voxels[:, 0]
    depth = serialization_depth(grid)

    def encode_all(encode):
        return lambda: [encode(grid, scene, depth, order) for order in ORDERS]

    yield Case(
        name=f"serialization_encode 4 orders M={num_voxels}",
        run=encode_all(serialization_encode),
        baselines=[Baseline("pure torch (reference)", encode_all(ref.serialization_encode), check=_check_equal,
                            target=5.0)],
        params=dict(voxels=num_voxels, scenes=scenes, depth=depth, orders=len(ORDERS)),
        bytes=len(ORDERS) * num_voxels * (12 + 4 + 8), items=(len(ORDERS) * num_voxels, "codes"),
        warmup=warmup, repeats=repeats)

    # FPS: Point-MAE grouping, 2048 points -> 128 centres.
    batches, n, samples = (8, 1024, 64) if quick else (32, 2048, 128)
    xyz = object_clouds(batches, n).to(device)
    expected_fps = ref.farthest_point_sample(xyz, samples)
    yield Case(
        name=f"fps B={batches} N={n} S={samples}",
        run=lambda: farthest_point_sample(xyz, samples),
        check=lambda got: _check_equal([got], [expected_fps]),
        baselines=[Baseline("torch loop", lambda: torch_loop_fps(xyz, samples),
                            check=lambda _, base: _check_equal([base], [expected_fps]), target=5.0)],
        params=dict(batches=batches, points=n, samples=samples), items=(batches, "clouds"),
        warmup=warmup, repeats=repeats)

    # kNN: 32 neighbours of each centre.
    queries, k = (64 if quick else 128), 32
    centres = torch.gather(xyz, 1, expected_fps[:, :queries, None].expand(-1, -1, 3))
    yield Case(
        name=f"knn B={batches} M={queries} N={n} k={k}",
        run=lambda: knn(centres, xyz, k),
        check=lambda got: _check_equal(got, ref.knn(centres, xyz, k)),
        baselines=[Baseline("cdist+topk", lambda: cdist_topk_knn(centres, xyz, k),
                            check=lambda got, base: torch.testing.assert_close(got[0], base.values, rtol=1e-3,
                                                                               atol=1e-5),
                            target=2.0)],
        params=dict(batches=batches, queries=queries, points=n, k=k), items=(batches * queries, "queries"),
        warmup=warmup, repeats=repeats)
