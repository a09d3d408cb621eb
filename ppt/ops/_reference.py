"""Pure-PyTorch references of every ppt op: slow, obviously correct, and the oracle of the tests.

Distances follow the kernels' evaluation order, ``(dx*dx + dy*dy) + dz*dz`` with every product
and sum a separate (unfused) operation in float32 for half inputs, so ties break identically.
"""

from __future__ import annotations

import math

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


# ---- Gaussian rasterization ------------------------------------------------------------------
# Dense twin of ppt.ops.rasterize_gaussians: every Gaussian is evaluated at every pixel of every
# image, with the kernels' culling, radius, tile membership (a Gaussian reaches the pixels of the
# tiles its 3-sigma box overlaps), thresholds and (float32 depth, index) order. Small images only.

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """(..., 4) quaternions (w, x, y, z), normalized here -> (..., 3, 3) rotation matrices."""
    w, x, y, z = (quats / quats.norm(dim=-1, keepdim=True)).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*quats.shape[:-1], 3, 3)


def project_gaussians(means, quats, scales, viewmat, K, width, height, near_plane, far_plane, eps2d):
    """One camera: (N, 3), (N, 4), (N, 3), (4, 4), (3, 3) -> radii (N,) int32, means2d (N, 2),
    depths (N,), conics (N, 3); means2d and conics are zero where radii == 0."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    pc = means @ R.T + t
    x, y, z = pc.unbind(-1)
    M = quat_to_rotmat(quats) * scales[:, None, :]
    cov_cam = R @ (M @ M.transpose(-1, -2)) @ R.T
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_x, lim_y = 1.3 * (0.5 * width / fx), 1.3 * (0.5 * height / fy)
    in_depth = (z >= near_plane) & (z <= far_plane)
    z_safe = torch.where(in_depth, z, torch.ones_like(z))
    rx = torch.minimum(torch.maximum(x / z_safe, -lim_x), lim_x)
    ry = torch.minimum(torch.maximum(y / z_safe, -lim_y), lim_y)
    zeros = torch.zeros_like(z)
    J = torch.stack([fx / z_safe, zeros, -fx * rx / z_safe, zeros, fy / z_safe, -fy * ry / z_safe], -1).reshape(-1, 2, 3)
    cov2d = J @ cov_cam @ J.transpose(-1, -2)
    a, b, c = cov2d[:, 0, 0] + eps2d, cov2d[:, 0, 1], cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    u, v = fx * (x / z_safe) + cx, fy * (y / z_safe) + cy
    with torch.no_grad():
        mid = 0.5 * (a + c)
        radius = torch.ceil(3 * torch.sqrt(mid + torch.sqrt((mid * mid - det).clamp_min(0))))
        visible = in_depth & (det > 0)
        visible &= ~((u + radius <= 0) | (u - radius >= width) | (v + radius <= 0) | (v - radius >= height))
        radii = torch.where(visible, radius, torch.zeros_like(radius)).to(torch.int32)
    det_safe = torch.where(visible, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1) * visible[:, None]
    means2d = torch.stack([u, v], -1) * visible[:, None]
    return radii, means2d, z, conics


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """(..., 3) unit directions -> (..., (degree+1)^2) real SH basis (Inria constants)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * x * z,
                SH_C2[4] * (xx - yy)]
    if degree >= 3:
        out += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z, SH_C3[2] * y * (4 * zz - xx - yy),
                SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, -1)


def spherical_harmonics(sh: Tensor, means: Tensor, viewmat: Tensor, degree: int) -> Tensor:
    """One camera: (N, K, 3) coefficients, (N, 3) means -> (N, 3) colours, SH + 0.5 clamped at 0."""
    centre = -viewmat[:3, :3].T @ viewmat[:3, 3]
    d = means - centre
    norm = d.norm(dim=-1, keepdim=True)
    dirs = d / torch.where(norm > 0, norm, torch.ones_like(norm))
    basis = sh_basis(dirs, degree)
    used = (degree + 1) ** 2
    return ((basis[..., None] * sh[:, :used, :]).sum(-2) + 0.5).clamp_min(0)


def composite_image(means2d, conics, features, opacities, radii, depths, width, height, tile_size, alpha_cap):
    """Dense front-to-back compositing of one image -> colours (H, W, D), alpha (H, W, 1)."""
    n, channels = features.shape
    dtype, device = features.dtype, features.device
    px = torch.arange(width, device=device, dtype=dtype) + 0.5
    py = torch.arange(height, device=device, dtype=dtype) + 0.5
    pix_y, pix_x = torch.meshgrid(py, px, indexing="ij")
    pix_x, pix_y = pix_x.reshape(-1), pix_y.reshape(-1)
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    with torch.no_grad():
        pix_tx = torch.div(pix_x - 0.5, tile_size, rounding_mode="floor")
        pix_ty = torch.div(pix_y - 0.5, tile_size, rounding_mode="floor")
        r = radii.to(dtype)
        u, v = means2d[:, 0], means2d[:, 1]
        x0 = torch.floor((u - r) / tile_size).clamp(0, tiles_x)
        x1 = torch.ceil((u + r) / tile_size).clamp(0, tiles_x)
        y0 = torch.floor((v - r) / tile_size).clamp(0, tiles_y)
        y1 = torch.ceil((v + r) / tile_size).clamp(0, tiles_y)
        in_rect = ((pix_tx >= x0[:, None]) & (pix_tx < x1[:, None]) & (pix_ty >= y0[:, None])
                   & (pix_ty < y1[:, None]) & (radii > 0)[:, None])
        order = torch.sort(depths.float(), stable=True).indices  # ties: lower index first
    dx = means2d[:, 0:1] - pix_x
    dy = means2d[:, 1:2] - pix_y
    sigma = 0.5 * (conics[:, 0:1] * dx * dx + conics[:, 2:3] * dy * dy) + conics[:, 1:2] * dx * dy
    alpha = torch.minimum(opacities[:, None] * torch.exp(-sigma), torch.full_like(sigma, alpha_cap))
    valid = in_rect & (sigma >= 0) & (alpha >= 1.0 / 255.0)
    alpha = torch.where(valid, alpha, torch.zeros_like(alpha))[order]
    with torch.no_grad():
        keep = torch.cumprod(1 - alpha, dim=0) >= 1e-4  # stops before transmittance drops below 1e-4
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    survive = torch.cumprod(1 - alpha, dim=0)
    transmittance = torch.cat([torch.ones_like(survive[:1]), survive[:-1]], dim=0)
    weights = alpha * transmittance  # (N sorted, P)
    colors = weights.T @ features[order]
    alphas = 1 - (survive[-1] if n > 0 else torch.ones(width * height, dtype=dtype, device=device))
    return colors.reshape(height, width, channels), alphas.reshape(height, width, 1)


def rasterize_gaussians(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *, sh_degree=None,
                        near_plane=0.01, far_plane=1e10, eps2d=0.3, alpha_cap=0.99, backgrounds=None,
                        render_mode="RGB", tile_size=16):
    """Same arguments and outputs (colours, alphas) as ppt.ops.rasterize_gaussians, minus meta."""
    batch, n, cams = means.shape[:-2], means.shape[-2], viewmats.shape[-3]
    scenes = math.prod(batch)
    means_f, quats_f = means.reshape(scenes, n, 3), quats.reshape(scenes, n, 4)
    scales_f, opac_f = scales.reshape(scenes, n, 3), opacities.reshape(scenes, n)
    view_f, K_f = viewmats.reshape(scenes, cams, 4, 4), Ks.reshape(scenes, cams, 3, 3)
    renders, alphas = [], []
    for s in range(scenes):
        for c in range(cams):
            radii, means2d, depths, conics = project_gaussians(
                means_f[s], quats_f[s], scales_f[s], view_f[s, c], K_f[s, c], width, height, near_plane,
                far_plane, eps2d)
            features = []
            if render_mode in ("RGB", "RGB+D", "RGB+ED"):
                if sh_degree is not None:
                    sh = colors.reshape(scenes, n, colors.shape[-2], 3)[s]
                    features.append(spherical_harmonics(sh, means_f[s], view_f[s, c], sh_degree))
                elif colors.dim() == len(batch) + 3:
                    features.append(colors.reshape(scenes, cams, n, colors.shape[-1])[s, c])
                else:
                    features.append(colors.reshape(scenes, n, colors.shape[-1])[s])
            if render_mode != "RGB":
                features.append(depths[:, None])
            image, alpha = composite_image(means2d, conics, torch.cat(features, -1), opac_f[s], radii, depths,
                                           width, height, tile_size, alpha_cap)
            if render_mode in ("ED", "RGB+ED"):
                image = torch.cat([image[..., :-1], image[..., -1:] / alpha.clamp_min(1e-10)], -1)
            if backgrounds is not None:
                bg = backgrounds.reshape(scenes, cams, -1)[s, c]
                if render_mode != "RGB":
                    bg = torch.cat([bg, bg.new_zeros(1)])
                image = image + (1 - alpha) * bg
            renders.append(image)
            alphas.append(alpha)
    out_shape = (*batch, cams, height, width)
    if not renders:
        channels = 1 if render_mode in ("D", "ED") else colors.shape[-1] + (render_mode != "RGB")
        return means.new_zeros(*out_shape, channels), means.new_zeros(*out_shape, 1)
    return torch.stack(renders).reshape(*out_shape, -1), torch.stack(alphas).reshape(*out_shape, 1)

# ---------------------------------------------------------------------------------------------
# sparse convolution (spconv 2.x semantics)


def _site_keys(sites: Tensor, extent: list[int]) -> Tensor:
    s = sites.long()
    return ((s[:, 0] * extent[0] + s[:, 1]) * extent[1] + s[:, 2]) * extent[2] + s[:, 3]


def _kernel_offsets(kernel_size: list[int], device) -> Tensor:
    """``(K, D)`` offsets ``(i, j, l)`` with the last axis fastest (spconv's weight flattening)."""
    axes = [torch.arange(k, device=device) for k in kernel_size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(kernel_size))


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
    """``(B, C, *spatial_shape)`` grid (``(B, C, X, Y, Z)`` in 3-D) holding ``features`` at ``indices``
    (``(N, 1 + D)`` rows ``[b, x, ...]``) and zeros elsewhere."""
    dense = features.new_zeros(batch_size, *spatial_shape, features.shape[1])
    dense = dense.index_put(tuple(indices.long().unbind(1)), features)
    return dense.movedim(-1, 1)


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


# ---------------------------------------------------------------------------------------------
# sparse pooling over a kernel map


def sparse_max_pool(features: Tensor, pairs: Tensor, pair_offsets: Tensor, num_out: int) -> tuple[Tensor, Tensor]:
    """Max by ``scatter_reduce``, then the winner: the first pair (the lowest kernel offset, as pairs
    are grouped by offset) whose value equals the maximum, or the last NaN pair where there is a
    NaN (torch's ``max_pool3d`` choices).

    Returns ``(out, argmax)``; ``out`` is ``features`` gathered at ``argmax`` (0 where no pair
    reaches a row), so its autograd routes each gradient to the winning row.
    """
    del pair_offsets  # the pairs' order already is the offset order
    channels = features.shape[1]
    rows_in, rows_out = pairs[0].long(), pairs[1].long()
    values = _opmath(features)[rows_in].detach()
    target = rows_out[:, None].expand(-1, channels)
    position = torch.arange(len(rows_in), device=features.device)[:, None].expand(-1, channels)
    none = torch.full((num_out, channels), -1, dtype=torch.long, device=features.device)
    last_nan = none.scatter_reduce(0, target, torch.where(values.isnan(), position, -1), "amax")
    peak = values.new_zeros(num_out, channels).scatter_reduce(0, target, values, "amax", include_self=False)
    ties = values == peak[rows_out]
    first_peak = none.scatter_reduce(0, target, torch.where(ties, position, len(rows_in)), "amin", include_self=False)
    chosen = torch.where(last_nan >= 0, last_nan, first_peak)
    argmax = torch.cat([rows_in, rows_in.new_tensor([-1])])[chosen]  # chosen = -1 (no pair) gives -1
    padded = torch.cat([features, features.new_zeros(1, channels)])
    out = padded.gather(0, torch.where(argmax < 0, features.shape[0], argmax))
    return out, argmax.int()


def sparse_avg_pool(features: Tensor, pairs: Tensor, pair_offsets: Tensor, num_out: int) -> Tensor:
    """``index_add`` of the pairs' inputs divided by the number of pairs of each output row."""
    del pair_offsets
    rows_in, rows_out = pairs[0].long(), pairs[1].long()
    sums = _opmath(features).new_zeros(num_out, features.shape[1]).index_add(0, rows_out, _opmath(features)[rows_in])
    counts = torch.bincount(rows_out, minlength=num_out).clamp(min=1)
    return (sums / counts[:, None].to(sums.dtype)).to(features.dtype)


# ---- serialization (PTv3 space-filling curves) -----------------------------------------------------
# Bit by bit: level l of the three axes goes to bits 3l+2, 3l+1, 3l. The Hilbert index follows
# Skilling, "Programming the Hilbert curve" (2004): transpose the axes level by level from the top,
# interleave, and undo the Gray code of the interleaved word.


def _interleave(axes: list[Tensor], depth: int) -> Tensor:
    code = torch.zeros_like(axes[0])
    for level in range(depth):
        for slot, axis in zip((2, 1, 0), axes):
            code |= ((axis >> level) & 1) << (3 * level + slot)
    return code


def _deinterleave(code: Tensor, depth: int) -> list[Tensor]:
    axes = [torch.zeros_like(code) for _ in range(3)]
    for level in range(depth):
        for slot, axis in zip((2, 1, 0), axes):
            axis |= ((code >> (3 * level + slot)) & 1) << level
    return axes


def _skilling_step(axes: list[Tensor], d: int, level: int) -> None:
    lower = (1 << level) - 1
    bit_set = ((axes[d] >> level) & 1).bool()
    swap = torch.where(bit_set, 0, (axes[0] ^ axes[d]) & lower)
    axes[0] = torch.where(bit_set, axes[0] ^ lower, axes[0] ^ swap)
    axes[d] = torch.where(bit_set, axes[d], axes[d] ^ swap)


def serialization_encode(grid_coord: Tensor, batch: Tensor | None, depth: int, order: str) -> Tensor:
    grid = grid_coord.long()
    axes = [grid[:, 1], grid[:, 0], grid[:, 2]] if order.endswith("-trans") else [grid[:, 0], grid[:, 1], grid[:, 2]]
    if order.startswith("hilbert"):
        for level in reversed(range(depth)):
            for d in range(3):
                _skilling_step(axes, d, level)
        gray = _interleave(axes, depth)
        code = torch.zeros_like(gray)
        for bit in reversed(range(3 * depth)):  # binary bit = XOR of the Gray bits from the top down to it
            above = (code >> (bit + 1)) & 1
            code |= (((gray >> bit) & 1) ^ above) << bit
    else:
        code = _interleave(axes, depth)
    if batch is not None:
        code = code | batch.long() << (3 * depth)
    return code


def serialization_decode(code: Tensor, depth: int, order: str) -> tuple[Tensor, Tensor]:
    batch = code >> (3 * depth)
    bits = code & ((1 << (3 * depth)) - 1)
    if order.startswith("hilbert"):
        bits = bits ^ (bits >> 1)
        axes = _deinterleave(bits, depth)
        for level in range(depth):
            for d in reversed(range(3)):
                _skilling_step(axes, d, level)
    else:
        axes = _deinterleave(bits, depth)
    if order.endswith("-trans"):
        axes[0], axes[1] = axes[1], axes[0]
    return torch.stack(axes, dim=1), batch
