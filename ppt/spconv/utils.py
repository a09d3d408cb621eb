"""``spconv.pytorch.utils`` on ppt: the voxel generator of detection codebases (``PointToVoxel``)
on :func:`ppt.ops.voxelize`, and ``gather_features_by_pc_voxel_id``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ppt.ops import voxelize
from ppt.ops._args import as_int, as_real

__all__ = ["PointToVoxel", "gather_features_by_pc_voxel_id"]


class PointToVoxel:
    """Groups a point cloud into voxels of at most ``max_num_points_per_voxel`` points, as
    ``spconv.pytorch.utils.PointToVoxel`` does on CPU.

    The box ``coors_range_xyz = [x_min, y_min, z_min, x_max, y_max, z_max]`` is cut into cells of
    ``vsize_xyz``; ``grid_size`` (z, y, x) = ``round((max - min) / vsize)``. A point's cell is
    ``floor((p - min) / vsize)`` per axis, computed in the cloud's dtype; points outside the grid
    are dropped. Voxels are numbered in the order their first point appears in the cloud, the
    first ``max_num_voxels`` are kept, and each keeps its first ``max_num_points_per_voxel``
    points in cloud order. Coordinates are returned as spconv returns them, ``(z, y, x)``.

    Args:
        vsize_xyz: voxel size along x, y, z (3 positive reals).
        coors_range_xyz: the box, 6 reals, minima then maxima.
        num_point_features: columns of the cloud (``>= 3``; x, y, z first).
        max_num_voxels: voxels kept per call.
        max_num_points_per_voxel: points kept per voxel.
        device: where the cloud lives (checked on each call).

    Unlike spconv, every call allocates its outputs (``clear_voxels=False`` therefore also gives
    zeros in the unused slots), ``voxels`` has the cloud's dtype (spconv's is always float32),
    ``empty_mean`` fills a voxel's unused slots with that voxel's mean (spconv 2.3.8's CPU path
    carries sums over from earlier voxels), and CUDA clouds give the same numbering as CPU ones
    (spconv's CUDA path numbers voxels in hash order).
    """

    def __init__(self, vsize_xyz: Sequence[float], coors_range_xyz: Sequence[float], num_point_features: int,
                 max_num_voxels: int, max_num_points_per_voxel: int,
                 device: torch.device | str = torch.device("cpu")) -> None:
        layer = "PointToVoxel"
        if not isinstance(vsize_xyz, Sequence) or len(vsize_xyz) != 3:
            raise ValueError(f"{layer}: vsize_xyz must be 3 voxel sizes (x, y, z); ppt voxelizes 3-D points, got "
                             f"{vsize_xyz!r}")
        if not isinstance(coors_range_xyz, Sequence) or len(coors_range_xyz) != 6:
            raise ValueError(f"{layer}: coors_range_xyz must be 6 numbers [x_min, y_min, z_min, x_max, y_max, z_max], "
                             f"got {coors_range_xyz!r}")
        vsize = [as_real(v, "vsize_xyz", layer, positive=True) for v in vsize_xyz]
        box = [as_real(v, "coors_range_xyz", layer) for v in coors_range_xyz]
        # spconv's float32 arithmetic and std::round (half away from zero).
        low, high, step = (np.float32(box[:3]), np.float32(box[3:]), np.float32(vsize))
        grid_size = [int(v) for v in np.floor((high - low) / step + np.float32(0.5))]
        if min(grid_size) < 1:
            raise ValueError(f"{layer}: coors_range_xyz {box} holds no voxel of size {vsize} along some axis "
                             "(each maximum must exceed its minimum by at least half a voxel)")
        self.ndim = 3
        self.num_point_features = as_int(num_point_features, "num_point_features", layer, minimum=3)
        self.max_num_voxels = as_int(max_num_voxels, "max_num_voxels", layer, minimum=1)
        self.max_num_points_per_voxel = as_int(max_num_points_per_voxel, "max_num_points_per_voxel", layer, minimum=1)
        self.device = torch.device(device)
        # spconv's attributes: float32 values, in its (z, y, x) order.
        self.vsize = [float(v) for v in step[::-1]]
        self.grid_size = grid_size[::-1]
        self.coors_range = [float(v) for v in np.concatenate([low[::-1], high[::-1]])]

    def __call__(self, pc: Tensor, clear_voxels: bool = True,
                 empty_mean: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """``voxels`` ``(M, max_num_points_per_voxel, num_point_features)`` (zeros, or with
        ``empty_mean`` the voxel's mean point, in unused slots), ``indices`` ``(M, 3)`` int32
        ``(z, y, x)`` and ``num_per_voxel`` ``(M,)`` int32."""
        return self.generate_voxel_with_id(pc, clear_voxels, empty_mean)[:3]

    def generate_voxel_with_id(self, pc: Tensor, clear_voxels: bool = True,
                               empty_mean: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """As :meth:`__call__`, plus ``pc_voxel_id`` ``(N,)`` int64: each point's voxel, -1 for
        points outside the grid or in a voxel beyond ``max_num_voxels`` (a point beyond its voxel's
        ``max_num_points_per_voxel`` keeps its voxel's id, as in spconv)."""
        layer = "PointToVoxel"
        if not isinstance(pc, Tensor) or pc.dim() != 2 or pc.shape[1] != self.num_point_features:
            raise ValueError(f"{layer}: pc must be (N, num_point_features={self.num_point_features}), got "
                             f"{tuple(pc.shape) if isinstance(pc, Tensor) else type(pc).__name__}")
        if not pc.is_floating_point():
            raise TypeError(f"{layer}: pc must be floating point, got {pc.dtype}")
        if pc.device.type != self.device.type:
            raise ValueError(f"{layer}: pc is on {pc.device} but this generator was made for {self.device}")
        with torch.no_grad():
            return self._voxelize(pc, empty_mean)

    def _voxelize(self, pc: Tensor, empty_mean: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        num_points, device = pc.shape[0], pc.device
        # spconv's arithmetic: the box and sizes are float32 values, the cell is computed in the cloud's
        # dtype (voxelize with unit voxels then floors it exactly).
        low = torch.tensor(self.coors_range[2::-1], dtype=pc.dtype, device=device)
        size = torch.tensor(self.vsize[::-1], dtype=pc.dtype, device=device)
        scaled = (pc[:, :3] - low) / size
        cell = scaled.floor()
        inside = ((cell >= 0) & (cell < torch.tensor(self.grid_size[::-1], dtype=pc.dtype, device=device))).all(1)
        kept = inside.nonzero().squeeze(1)
        _, inverse, point_counts = voxelize(scaled[kept], 1.0)
        # Number voxels by their first point (spconv's order) and keep the first max_num_voxels.
        first = torch.full_like(point_counts, num_points).scatter_reduce(0, inverse, kept, "amin")
        order = torch.argsort(first)
        voxel_of = torch.empty_like(order)
        voxel_of[order] = torch.arange(order.numel(), device=device)
        voxel = voxel_of[inverse]  # per kept point, in cloud order
        num_voxels = min(order.numel(), self.max_num_voxels)
        pc_voxel_id = torch.full((num_points,), -1, dtype=torch.int64, device=device)
        pc_voxel_id[kept] = torch.where(voxel < num_voxels, voxel, -1)
        # Each point's rank among its voxel's points in cloud order (a stable sort keeps that order).
        by_voxel = torch.sort(voxel, stable=True)
        counts = point_counts[order]
        starts = counts.cumsum(0) - counts
        rank = torch.empty_like(voxel)
        rank[by_voxel.indices] = torch.arange(voxel.numel(), device=device) - starts[by_voxel.values]
        stored = (voxel < num_voxels) & (rank < self.max_num_points_per_voxel)
        voxels = pc.new_zeros(num_voxels, self.max_num_points_per_voxel, self.num_point_features)
        voxels[voxel[stored], rank[stored]] = pc[kept[stored]]
        num_per_voxel = counts[:num_voxels].clamp(max=self.max_num_points_per_voxel)
        if empty_mean:
            mean = voxels.sum(1) / num_per_voxel[:, None].to(pc.dtype)
            empty = torch.arange(self.max_num_points_per_voxel, device=device)[None, :] >= num_per_voxel[:, None]
            voxels = torch.where(empty[..., None], mean[:, None, :], voxels)
        indices = cell[first[order[:num_voxels]]].flip(1).int()  # (z, y, x) of each voxel's first point
        return voxels, indices, num_per_voxel.int(), pc_voxel_id


def gather_features_by_pc_voxel_id(seg_res_features: Tensor, pc_voxel_id: Tensor,
                                   invalid_value: int | float = 0) -> Tensor:
    """Per-point rows of per-voxel results: ``seg_res_features[pc_voxel_id]`` ``(N, ...)``, with
    ``invalid_value`` for points whose id is -1 (spconv's function of the same name)."""
    if pc_voxel_id.dim() != 1:
        raise ValueError(f"gather_features_by_pc_voxel_id: pc_voxel_id must be (N,), got {tuple(pc_voxel_id.shape)}")
    pc_voxel_id = pc_voxel_id.to(seg_res_features.device)
    valid = pc_voxel_id != -1
    result = seg_res_features.new_full((pc_voxel_id.shape[0], *seg_res_features.shape[1:]), invalid_value)
    result[valid] = seg_res_features[pc_voxel_id[valid]]
    return result
