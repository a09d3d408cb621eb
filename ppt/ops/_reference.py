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


# ---------------------------------------------------------------------------------------------
# sparse convolution (spconv 2.x semantics)


def _site_keys(sites: Tensor, extent: list[int]) -> Tensor:
    s = sites.long()
    return ((s[:, 0] * extent[0] + s[:, 1]) * extent[1] + s[:, 2]) * extent[2] + s[:, 3]


def _kernel_offsets(kernel_size: list[int], device) -> Tensor:
    """``(K, 3)`` offsets ``(i, j, l)`` with ``l`` fastest (spconv's weight flattening)."""
    axes = [torch.arange(k, device=device) for k in kernel_size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def sparse_kernel_map(indices: Tensor, batch_size: int, spatial_shape, kernel_size, stride, padding, dilation,
                      submanifold: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs by brute force over offsets with a sorted-key search; same ordering as the op."""
    device = indices.device
    kernel, stride, padding, dilation = (torch.tensor(v, device=device) for v in (kernel_size, stride, padding, dilation))
    in_shape = list(spatial_shape)
    offsets = _kernel_offsets(list(kernel_size), device)
    sites = indices.long()
    if submanifold:
        out_shape, out_sites = in_shape, sites
    else:
        out_shape = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                     zip(in_shape, kernel_size, stride.tolist(), padding.tolist(), dilation.tolist())]
    pair_in, pair_out, counts = [], [], []
    candidates = []
    for offset in offsets:
        if submanifold:
            neighbour = sites[:, 1:] + (offset - kernel // 2) * dilation
            inside = ((neighbour >= 0) & (neighbour < torch.tensor(in_shape, device=device))).all(1)
            candidates.append((torch.cat([sites[:, :1], neighbour], 1), inside))
        else:
            numerator = sites[:, 1:] + padding - offset * dilation
            out = torch.div(numerator, stride, rounding_mode="floor")
            valid = ((numerator >= 0) & (numerator % stride == 0) & (out < torch.tensor(out_shape, device=device))).all(1)
            candidates.append((torch.cat([sites[:, :1], out], 1), valid))
    if not submanifold:
        reached = torch.cat([_site_keys(c[v], out_shape) for c, v in candidates])
        out_keys = torch.unique(reached, sorted=True)
        out_sites = torch.stack([out_keys // (out_shape[0] * out_shape[1] * out_shape[2]),
                                 out_keys // (out_shape[1] * out_shape[2]) % out_shape[0],
                                 out_keys // out_shape[2] % out_shape[1], out_keys % out_shape[2]], 1)
    target_keys = _site_keys(sites, in_shape) if submanifold else _site_keys(out_sites, out_shape)
    order = torch.argsort(target_keys)
    sorted_keys = target_keys[order]
    for found_sites, valid in candidates:
        keys = _site_keys(found_sites, in_shape if submanifold else out_shape)
        position = torch.searchsorted(sorted_keys, keys).clamp(max=max(len(sorted_keys) - 1, 0))
        hit = valid & (sorted_keys[position] == keys) if len(sorted_keys) else valid & False
        rows = torch.nonzero(hit).squeeze(1)
        partner = order[position[rows]] if len(sorted_keys) else rows
        # rows index the map's own sites (outputs for SubM, inputs for strided), partner the others.
        pair_in.append(partner if submanifold else rows)
        pair_out.append(rows if submanifold else partner)
        counts.append(len(rows))
    pairs = torch.stack([torch.cat(pair_in), torch.cat(pair_out)]).int()
    pair_offsets = torch.tensor([0] + counts, device=device).cumsum(0)
    return out_sites.int(), pairs, pair_offsets


def sparse_conv(features: Tensor, weight: Tensor, pairs: Tensor, pair_offsets: Tensor, num_out: int) -> Tensor:
    """Pairwise reference: one ``index_add`` of ``features[in] @ weight[:, k].T`` per offset."""
    compute = _opmath(features)
    out = compute.new_zeros(num_out, weight.shape[0])
    for k in range(weight.shape[1]):
        start, end = int(pair_offsets[k]), int(pair_offsets[k + 1])
        rows_in, rows_out = pairs[0, start:end].long(), pairs[1, start:end].long()
        out = out.index_add(0, rows_out, compute[rows_in] @ _opmath(weight[:, k]).t())
    return out.to(features.dtype)


def sparse_to_dense(features: Tensor, indices: Tensor, batch_size: int, spatial_shape) -> Tensor:
    """``(B, C, X, Y, Z)`` grid holding ``features`` at ``indices`` and zeros elsewhere."""
    dense = features.new_zeros(batch_size, *spatial_shape, features.shape[1])
    i = indices.long()
    dense = dense.index_put((i[:, 0], i[:, 1], i[:, 2], i[:, 3]), features)
    return dense.permute(0, 4, 1, 2, 3)


def sparse_conv_dense(features: Tensor, indices: Tensor, batch_size: int, spatial_shape, weight: Tensor,
                      stride=(1, 1, 1), padding=(0, 0, 0), dilation=(1, 1, 1), submanifold: bool = False,
                      ) -> tuple[Tensor, Tensor]:
    """Dense ``conv3d`` on the densified input, read at the output sites.

    ``weight`` is spconv's ``(Cout, kx, ky, kz, Cin)``. Output sites: the input sites
    (submanifold) or every site of the dense output reached by an active input site (found by
    convolving the occupancy grid with a ones kernel), sorted by ``(b, x, y, z)``.
    Returns ``(out_features (M, Cout), out_indices (M, 4) int32)``.
    """
    kernel_size = list(weight.shape[1:4])
    dense_weight = weight.permute(0, 4, 1, 2, 3)
    x = sparse_to_dense(_opmath(features), indices, batch_size, spatial_shape)
    if submanifold:
        pad = [k // 2 * d for k, d in zip(kernel_size, dilation)]
        out = torch.nn.functional.conv3d(x, _opmath(dense_weight), padding=pad, dilation=list(dilation))
        i = indices.long()
        return out[i[:, 0], :, i[:, 1], i[:, 2], i[:, 3]].to(features.dtype), indices
    occupancy = sparse_to_dense(torch.ones(len(indices), 1, dtype=torch.float64, device=features.device),
                                indices, batch_size, spatial_shape)
    reached = torch.nn.functional.conv3d(occupancy, torch.ones(1, 1, *kernel_size, dtype=torch.float64, device=features.device),
                                         stride=list(stride), padding=list(padding), dilation=list(dilation))
    out_indices = torch.nonzero(reached[:, 0] > 0)
    out = torch.nn.functional.conv3d(x, _opmath(dense_weight), stride=list(stride), padding=list(padding),
                                     dilation=list(dilation))
    i = out_indices
    return out[i[:, 0], :, i[:, 1], i[:, 2], i[:, 3]].to(features.dtype), out_indices.int()
