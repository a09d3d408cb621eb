"""Pure-PyTorch references of every ppt op: slow, obviously correct, and the oracle of the tests.

Distances follow the kernels' evaluation order, ``(dx*dx + dy*dy) + dz*dz`` with every product
and sum a separate (unfused) operation in float32 for half inputs, so ties break identically.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _opmath(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def squared_distance(a: Tensor, b: Tensor) -> Tensor:
    """``(dx*dx + dy*dy) + dz*dz`` over the last dim (size 3), broadcasting ``a`` against ``b``."""
    d = a - b
    return (d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]) + d[..., 2] * d[..., 2]


def voxelize(coord: Tensor, voxel_size: float, batch: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    grid = torch.floor(coord.double() / voxel_size).long()
    if batch is None:
        batch = torch.zeros(coord.shape[0], dtype=torch.long, device=coord.device)
    if coord.shape[0] == 0:
        empty = torch.empty(0, dtype=torch.long, device=coord.device)
        return torch.empty(0, 4, dtype=torch.int32, device=coord.device), empty, empty.clone()
    num_batches = int(batch.max()) + 1
    lowest = torch.full((num_batches, 3), torch.iinfo(torch.long).max, device=coord.device)
    lowest = lowest.scatter_reduce(0, batch[:, None].expand(-1, 3), grid, reduce="amin")
    keys = torch.cat([batch[:, None], grid - lowest[batch]], dim=1)
    voxels, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    return voxels.int(), inverse, counts


def farthest_point_sample(xyz: Tensor, num_samples: int, start_index: int = 0) -> Tensor:
    points = _opmath(xyz)
    batches, n, _ = points.shape
    out = torch.empty(batches, num_samples, dtype=torch.long, device=xyz.device)
    min_dist = torch.full((batches, n), float("inf"), dtype=points.dtype, device=xyz.device)
    last = torch.full((batches,), start_index, dtype=torch.long, device=xyz.device)
    rows = torch.arange(batches, device=xyz.device)
    for s in range(num_samples):
        out[:, s] = last
        centre = points[rows, last][:, None, :]
        min_dist = torch.minimum(min_dist, squared_distance(points, centre))
        last = torch.argmax(min_dist, dim=1)  # first maximum: ties to the lower index
    return out


def knn(query: Tensor, points: Tensor, k: int) -> tuple[Tensor, Tensor]:
    dist = squared_distance(_opmath(query)[:, :, None, :], _opmath(points)[:, None, :, :])
    dist, index = torch.sort(dist, dim=-1, stable=True)  # stable: ties keep the lower index first
    index = index[..., :k]
    # Recompute the kept distances from gathered points so autograd reaches query and points.
    gathered = torch.gather(
        points[:, None, :, :].expand(-1, query.shape[1], -1, -1), 2, index[..., None].expand(-1, -1, -1, 3)
    )
    dist2 = squared_distance(_opmath(query)[:, :, None, :], _opmath(gathered))
    return dist2.to(query.dtype), index


def segment_batch_norm(
    x: Tensor,
    segment: Tensor,
    num_segments: int,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """``F.batch_norm`` on each segment's rows (computed in float32 for half inputs), scattered back.

    Running buffers are updated in place through row views, so they must be contiguous ``(S, C)``.
    """
    xs = _opmath(x)
    out = xs * 0  # every row is overwritten below; multiplying keeps x in the graph when N == 0
    for s in range(num_segments):
        rows = torch.nonzero(segment == s).squeeze(1)
        if rows.numel() == 0:
            continue
        y = torch.nn.functional.batch_norm(
            xs[rows],
            running_mean[s] if running_mean is not None else None,
            running_var[s] if running_var is not None else None,
            weight[s].to(xs.dtype) if weight is not None else None,
            bias[s].to(xs.dtype) if bias is not None else None,
            training,
            momentum,
            eps,
        )
        out = out.index_copy(0, rows, y)
    return out.to(x.dtype)
