"""Point-op benchmarks: ppt kernels against the plain-PyTorch code people write instead.

- voxelize vs the reference: per-scene minimum by ``scatter_reduce`` then
  ``torch.unique(dim=0, return_inverse=True, return_counts=True)`` on (b, x, y, z) rows
- farthest_point_sample vs the vectorized torch loop of Point-MAE / PointNet++ (pure torch)
- knn vs ``torch.cdist`` + ``topk``

Run: ``python -m bench.point_ops [--quick] [--device cpu|cuda] [--out FILE]`` or ``ppt bench``.
"""

from __future__ import annotations

import sys

import torch

from bench.harness import Comparison, compare
from ppt.data.synthetic import indoor_room, object_clouds
from ppt.ops import _reference as ref
from ppt.ops import farthest_point_sample, knn, voxelize

SUITE = "point_ops"


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


def run(device: torch.device, quick: bool = False) -> list[Comparison]:
    repeats, warmup = (5, 1) if quick else (15, 3)
    results = []

    # voxelize: a 2 cm grid over an indoor scan, four scenes per batch like a training step.
    num_points = 200_000 if quick else 1_000_000
    scenes = 4
    coord = torch.cat([indoor_room(num_points // scenes, seed=s) for s in range(scenes)]).to(device)
    batch = torch.arange(scenes, device=device).repeat_interleave(num_points // scenes)
    voxel_size = 0.02
    voxels = voxelize(coord, voxel_size, batch)[0]
    results.append(compare(
        suite=SUITE, case=f"voxelize N={num_points} 2cm", device=device,
        params=dict(points=num_points, scenes=scenes, voxel_size=voxel_size, voxels=voxels.shape[0]),
        candidate=lambda: voxelize(coord, voxel_size, batch),
        baseline=lambda: ref.voxelize(coord, voxel_size, batch),
        baseline_name="torch.unique", check=_check_equal, warmup=warmup, repeats=repeats,
        target_speedup=3.0,
    ))

    # FPS: Point-MAE grouping, 2048 points -> 128 centres.
    batches, n, samples = (8, 1024, 64) if quick else (32, 2048, 128)
    xyz = object_clouds(batches, n).to(device)
    expected_fps = ref.farthest_point_sample(xyz, samples)
    results.append(compare(
        suite=SUITE, case=f"fps B={batches} N={n} S={samples}", device=device,
        params=dict(batches=batches, points=n, samples=samples),
        candidate=lambda: farthest_point_sample(xyz, samples),
        baseline=lambda: torch_loop_fps(xyz, samples),
        baseline_name="torch loop",
        check=lambda got, base: (_check_equal([got], [expected_fps]), _check_equal([base], [expected_fps])),
        warmup=warmup, repeats=repeats, target_speedup=5.0,
    ))

    # kNN: 32 neighbours of each centre.
    queries, k = (64 if quick else 128), 32
    centres = torch.gather(xyz, 1, expected_fps[:, :queries, None].expand(-1, -1, 3))

    def check_knn(got, base):
        _check_equal(got, ref.knn(centres, xyz, k))
        torch.testing.assert_close(got[0], base.values, rtol=1e-3, atol=1e-5)

    results.append(compare(
        suite=SUITE, case=f"knn B={batches} M={queries} N={n} k={k}", device=device,
        params=dict(batches=batches, queries=queries, points=n, k=k),
        candidate=lambda: knn(centres, xyz, k),
        baseline=lambda: cdist_topk_knn(centres, xyz, k),
        baseline_name="cdist+topk", check=check_knn, warmup=warmup, repeats=repeats,
        target_speedup=2.0,
    ))
    return results


if __name__ == "__main__":
    from bench.cli import main

    main([SUITE, *sys.argv[1:]])
