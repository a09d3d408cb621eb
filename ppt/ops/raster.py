"""Differentiable 3D Gaussian splatting rasterizer, batched over scenes and cameras.

:func:`rasterize_gaussians` composes four kernels (``csrc/raster``), each a ``torch.ops.ppt`` op
with a fake implementation and, where differentiable, an autograd formula calling its backward op:

1. ``project_gaussians``: EWA projection of every Gaussian into every camera of its scene;
2. ``spherical_harmonics``: view-dependent colour (only when ``sh_degree`` is given);
3. ``bin_gaussians``: duplication into the overlapped tiles and sort by (image, tile, depth);
4. ``rasterize_tiles``: front-to-back alpha compositing per tile.

Gradients reach ``means``, ``quats``, ``scales``, ``opacities``, ``colors`` (or SH coefficients)
and ``backgrounds``; cameras (``viewmats``, ``Ks``) are treated as constants. Double backward is
not implemented: differentiating gradients taken with ``create_graph=True`` raises a RuntimeError
naming the op. Under ``torch.autocast`` every op runs in float32.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ppt.ops._args import as_bool, as_int, as_real
from ppt.ops._autograd import register_not_differentiable

__all__ = ["rasterize_gaussians", "RENDER_MODES"]

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")


def rasterize_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    alpha_cap: float = 0.99,
    backgrounds: Tensor | None = None,
    render_mode: str = "RGB",
    tile_size: int = 16,
    deterministic: bool = False,
    retain_means2d_grad: bool = False,
) -> tuple[Tensor, Tensor, dict]:
    """Render Gaussians of a batch of scenes into each scene's cameras in one call.

    Leading dims ``...`` are batch dims shared by all arguments (gsplat convention); below,
    ``N`` Gaussians per scene and ``C`` cameras per scene. All floating inputs are float32 or
    float64 and live on one device.

    Args:
        means: ``(..., N, 3)`` world-space centres (finite).
        quats: ``(..., N, 4)`` rotations as quaternions ``(w, x, y, z)``; normalized internally,
            must be non-zero.
        scales: ``(..., N, 3)`` standard deviations along the rotated axes (not log-scales).
        opacities: ``(..., N)`` in [0, 1] (after the sigmoid).
        colors: ``(..., N, D)`` or ``(..., C, N, D)`` direct colours/features when ``sh_degree``
            is None, else ``(..., N, K, 3)`` real SH coefficients with ``K >= (sh_degree+1)^2``
            (colour = SH(view dir) + 0.5, clamped at 0, Inria convention).
        viewmats: ``(..., C, 4, 4)`` world-to-camera matrices (OpenCV axes: x right, y down, z
            forward).
        Ks: ``(..., C, 3, 3)`` pinhole intrinsics, ``fx, fy > 0``.
        width, height: image size in pixels; pixel ``(u, v)`` has its centre at ``(u+0.5, v+0.5)``.
        near_plane, far_plane: Gaussians with camera depth outside ``[near, far]`` are culled.
        eps2d: added to the diagonal of every 2D covariance (low-pass filter).
        alpha_cap: per-splat alpha is ``min(alpha_cap, opacity * exp(-0.5 d^T conic d))``.
        backgrounds: optional ``(..., C, D)`` colour behind the Gaussians, blended as
            ``(1 - alpha) * bg`` (colour channels only; not allowed for ``"D"``/``"ED"``).
        render_mode: ``"RGB"`` colours; ``"D"`` accumulated depth ``sum w_i z_i``; ``"ED"``
            expected depth (accumulated depth / alpha); ``"RGB+D"``/``"RGB+ED"`` colour with the
            depth appended as the last channel.
        tile_size: edge of the square screen tiles (1..32).
        deterministic: on CUDA, accumulate the backward without order-dependent float atomics
            (bitwise reproducible, slower, more memory). The CPU backward is always deterministic.
        retain_means2d_grad: call ``retain_grad()`` on ``meta["means2d"]`` so its gradient (used
            for densification) is available after ``backward()``.

    Returns:
        ``colors`` ``(..., C, H, W, D')`` with ``D' = D`` (RGB), 1 (D/ED) or ``D + 1``;
        ``alphas`` ``(..., C, H, W, 1)``; ``meta`` dict with ``radii`` ``(..., C, N)`` int32 (0 =
        culled), ``means2d`` ``(..., C, N, 2)``, ``depths`` ``(..., C, N)``, ``conics``
        ``(..., C, N, 3)``, ``tiles_per_gaussian`` ``(..., C, N)`` int32, ``tile_offsets``
        ``(I, tiles_y, tiles_x)`` int32 and ``flatten_ids`` ``(M,)`` int64 over the ``I``
        flattened images, plus ``tile_size``, ``tiles_x``, ``tiles_y``.
    """
    op = "rasterize_gaussians"
    width, height = as_int(width, "width", op), as_int(height, "height", op)
    tile_size = as_int(tile_size, "tile_size", op)
    if sh_degree is not None:
        sh_degree = as_int(sh_degree, "sh_degree", op)
    near_plane, far_plane = as_real(near_plane, "near_plane", op), as_real(far_plane, "far_plane", op)
    eps2d, alpha_cap = as_real(eps2d, "eps2d", op), as_real(alpha_cap, "alpha_cap", op)
    deterministic = as_bool(deterministic, "deterministic", op)
    retain_means2d_grad = as_bool(retain_means2d_grad, "retain_means2d_grad", op)
    if render_mode not in RENDER_MODES:
        raise ValueError(f"rasterize_gaussians: render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if backgrounds is not None and render_mode in ("D", "ED"):
        raise ValueError(f"rasterize_gaussians: backgrounds apply to colour channels; render_mode {render_mode!r} has none")
    if means.dim() < 2 or means.shape[-1] != 3:
        raise ValueError(f"rasterize_gaussians: means must have shape (..., N, 3), got {tuple(means.shape)}")
    batch = tuple(means.shape[:-2])
    n = means.shape[-2]
    if viewmats.dim() < 3 or tuple(viewmats.shape[-2:]) != (4, 4):
        raise ValueError(f"rasterize_gaussians: viewmats must have shape (..., C, 4, 4), got {tuple(viewmats.shape)}")
    cams = viewmats.shape[-3]
    _expect_shape("quats", quats, (*batch, n, 4), "(..., N, 4)")
    _expect_shape("scales", scales, (*batch, n, 3), "(..., N, 3)")
    _expect_shape("opacities", opacities, (*batch, n), "(..., N)")
    _expect_shape("viewmats", viewmats, (*batch, cams, 4, 4), "(..., C, 4, 4)")
    _expect_shape("Ks", Ks, (*batch, cams, 3, 3), "(..., C, 3, 3)")
    scenes = math.prod(batch)
    images = scenes * cams
    flat_means = means.reshape(scenes, n, 3)
    flat_viewmats = viewmats.reshape(scenes, cams, 4, 4)
    means2d, depths, conics, radii = project_gaussians(
        flat_means, quats.reshape(scenes, n, 4), scales.reshape(scenes, n, 3), flat_viewmats,
        Ks.reshape(scenes, cams, 3, 3), width, height, near_plane, far_plane, eps2d,
    )
    # Keep the user-facing (..., C, N, 2) view on the autograd path so retain_grad() sees its grad.
    means2d = means2d.reshape(*batch, cams, n, 2)
    if retain_means2d_grad and means2d.requires_grad:
        means2d.retain_grad()

    features = []
    if render_mode in ("RGB", "RGB+D", "RGB+ED"):
        features.append(_camera_colors(colors, flat_means, flat_viewmats, sh_degree, batch, n, cams))
    if render_mode != "RGB":
        features.append(depths.reshape(scenes, cams, n, 1))
    features = torch.cat(features, dim=-1) if len(features) > 1 else features[0]
    channels = features.shape[-1]

    tiles_per_gaussian, tile_offsets, flatten_ids = bin_gaussians(
        means2d.detach().reshape(images, n, 2), radii.reshape(images, n), depths.detach().reshape(images, n),
        width, height, tile_size,
    )
    image_opacities = opacities.reshape(scenes, 1, n).expand(scenes, cams, n).reshape(images, n)
    render, alphas, _ = rasterize_tiles(
        means2d.reshape(images, n, 2), conics.reshape(images, n, 3), features.reshape(images, n, channels),
        image_opacities, width, height, tile_size, alpha_cap, tile_offsets, flatten_ids, deterministic,
    )
    if render_mode in ("ED", "RGB+ED"):
        render = torch.cat([render[..., :-1], render[..., -1:] / alphas.clamp_min(1e-10)], dim=-1)
    if backgrounds is not None:
        color_channels = channels - (render_mode != "RGB")
        _expect_shape("backgrounds", backgrounds, (*batch, cams, color_channels), "(..., C, D)")
        bg = backgrounds.reshape(images, 1, 1, color_channels)
        if color_channels != channels:
            bg = torch.cat([bg, bg.new_zeros(images, 1, 1, 1)], dim=-1)
        render = render + (1 - alphas) * bg

    image_shape = (*batch, cams, height, width)
    meta = dict(
        radii=radii.reshape(*batch, cams, n), means2d=means2d,
        depths=depths.reshape(*batch, cams, n), conics=conics.reshape(*batch, cams, n, 3),
        tiles_per_gaussian=tiles_per_gaussian.reshape(*batch, cams, n), tile_offsets=tile_offsets,
        flatten_ids=flatten_ids, tile_size=tile_size, tiles_x=tile_offsets.shape[-1], tiles_y=tile_offsets.shape[-2],
    )
    return render.reshape(*image_shape, channels), alphas.reshape(*image_shape, 1), meta


def _expect_shape(name: str, tensor: Tensor, shape: tuple, layout: str) -> None:
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"rasterize_gaussians: {name} must have shape {layout} = {tuple(shape)} "
                         f"(batch dims must match means and viewmats), got {tuple(tensor.shape)}")


def _camera_colors(colors, means, viewmats, sh_degree, batch, n, cams) -> Tensor:
    """Per-camera colours (B, C, N, D) from direct colours or SH coefficients."""
    scenes = means.shape[0]
    if sh_degree is None:
        if colors.dim() == len(batch) + 2 and tuple(colors.shape[:-1]) == (*batch, n):
            return colors.reshape(scenes, 1, n, colors.shape[-1]).expand(scenes, cams, n, colors.shape[-1])
        if colors.dim() == len(batch) + 3 and tuple(colors.shape[:-1]) == (*batch, cams, n):
            return colors.reshape(scenes, cams, n, colors.shape[-1])
        raise ValueError("rasterize_gaussians: with sh_degree=None, colors must have shape (..., N, D) or "
                         f"(..., C, N, D) with ... = {batch}, N = {n}, C = {cams}, got {tuple(colors.shape)}")
    if colors.dim() != len(batch) + 3 or tuple(colors.shape[:-2]) != (*batch, n) or colors.shape[-1] != 3:
        raise ValueError("rasterize_gaussians: with sh_degree set, colors must be SH coefficients of shape "
                         f"(..., N, K, 3) with ... = {batch}, N = {n}, got {tuple(colors.shape)}")
    return spherical_harmonics(colors.reshape(scenes, n, colors.shape[-2], 3), means, viewmats, sh_degree)


# ---- op wrappers -----------------------------------------------------------------------------


def project_gaussians(means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor, Ks: Tensor,
                      width: int, height: int, near_plane: float = 0.01, far_plane: float = 1e10,
                      eps2d: float = 0.3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EWA projection. ``means`` (B, N, 3), ``quats`` (B, N, 4), ``scales`` (B, N, 3), ``viewmats``
    (B, C, 4, 4), ``Ks`` (B, C, 3, 3) -> ``means2d`` (B, C, N, 2), ``depths`` (B, C, N) camera z,
    ``conics`` (B, C, N, 3) inverse 2D covariance ``(a, b, c)`` of ``[[a, b], [b, c]]`` and
    ``radii`` (B, C, N) int32 (0 = culled); means2d/conics are zero for culled Gaussians."""
    op = "project_gaussians"
    return torch.ops.ppt.project_gaussians.default(
        means, quats, scales, viewmats, Ks, as_int(width, "width", op), as_int(height, "height", op),
        as_real(near_plane, "near_plane", op), as_real(far_plane, "far_plane", op), as_real(eps2d, "eps2d", op))


def spherical_harmonics(sh: Tensor, means: Tensor, viewmats: Tensor, degree: int) -> Tensor:
    """``sh`` (B, N, K, 3), ``means`` (B, N, 3), ``viewmats`` (B, C, 4, 4) -> colours (B, C, N, 3):
    ``max(0, sum_k Y_k(dir) sh[k] + 0.5)`` with ``dir`` the unit vector camera centre -> mean."""
    degree = as_int(degree, "degree", "spherical_harmonics")
    return torch.ops.ppt.spherical_harmonics.default(sh, means, viewmats, degree)


def rasterize_tiles(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, width: int, height: int,
                    tile_size: int, alpha_cap: float, tile_offsets: Tensor, flatten_ids: Tensor,
                    deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Composite I images: ``means2d`` (I, N, 2), ``conics`` (I, N, 3), ``colors`` (I, N, D),
    ``opacities`` (I, N) with the bins of ``bin_gaussians`` -> colours (I, H, W, D), alphas
    (I, H, W, 1), ``last_ids`` (I, H, W) int32 (entries of the tile each pixel walked).
    ``deterministic`` only changes how the backward accumulates on CUDA."""
    op = "rasterize_tiles"
    return torch.ops.ppt.rasterize_tiles.default(
        means2d, conics, colors, opacities, as_int(width, "width", op), as_int(height, "height", op),
        as_int(tile_size, "tile_size", op), as_real(alpha_cap, "alpha_cap", op), tile_offsets, flatten_ids,
        as_bool(deterministic, "deterministic", op))


def bin_gaussians(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int,
                  tile_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """``means2d`` (I, N, 2), ``radii`` (I, N) int32, ``depths`` (I, N) -> ``tiles_per_gaussian``
    (I, N) int32, ``tile_offsets`` (I, tiles_y, tiles_x) int32 (first entry of each tile) and
    ``flatten_ids`` (M,) int64 (``image * N + gaussian``) sorted by (image, tile, float32 depth,
    index)."""
    op = "bin_gaussians"
    return torch.ops.ppt.bin_gaussians.default(means2d, radii, depths, as_int(width, "width", op),
                                               as_int(height, "height", op), as_int(tile_size, "tile_size", op))


# ---- fake kernels (torch.compile / meta) ---------------------------------------------------------


@torch.library.register_fake("ppt::project_gaussians")
def _project_fake(means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d):
    b, n, c = means.shape[0], means.shape[1], viewmats.shape[1]
    return (means.new_empty((b, c, n, 2)), means.new_empty((b, c, n)), means.new_empty((b, c, n, 3)),
            means.new_empty((b, c, n), dtype=torch.int32))


@torch.library.register_fake("ppt::project_gaussians_backward")
def _project_backward_fake(grad_means2d, grad_depths, grad_conics, means, quats, scales, viewmats, Ks, radii,
                           width, height, near_plane, far_plane, eps2d):
    return torch.empty_like(means), torch.empty_like(quats), torch.empty_like(scales)


@torch.library.register_fake("ppt::spherical_harmonics")
def _sh_fake(sh, means, viewmats, degree):
    return sh.new_empty((sh.shape[0], viewmats.shape[1], sh.shape[1], 3))


@torch.library.register_fake("ppt::spherical_harmonics_backward")
def _sh_backward_fake(grad_colors, sh, means, viewmats, degree):
    return torch.empty_like(sh), torch.empty_like(means)


@torch.library.register_fake("ppt::bin_gaussians")
def _bin_fake(means2d, radii, depths, width, height, tile_size):
    images, n = means2d.shape[0], means2d.shape[1]
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    entries = torch.library.get_ctx().new_dynamic_size()
    return (radii.new_empty((images, n)), radii.new_empty((images, tiles_y, tiles_x)),
            radii.new_empty((entries,), dtype=torch.int64))


@torch.library.register_fake("ppt::rasterize_tiles")
def _rasterize_fake(means2d, conics, colors, opacities, width, height, tile_size, alpha_cap, tile_offsets,
                    flatten_ids, deterministic=False):
    images, channels = colors.shape[0], colors.shape[2]
    return (colors.new_empty((images, height, width, channels)), colors.new_empty((images, height, width, 1)),
            tile_offsets.new_empty((images, height, width)))


@torch.library.register_fake("ppt::rasterize_tiles_backward")
def _rasterize_backward_fake(grad_colors, grad_alphas, means2d, conics, colors, opacities, width, height,
                             tile_size, alpha_cap, tile_offsets, flatten_ids, render_alphas, last_ids,
                             deterministic):
    return (torch.empty_like(means2d), torch.empty_like(conics), torch.empty_like(colors),
            torch.empty_like(opacities))


# ---- autograd ----------------------------------------------------------------------------------


def _project_setup_context(ctx, inputs, output):
    means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d = inputs
    ctx.save_for_backward(means, quats, scales, viewmats, Ks, output[3])
    ctx.args = (width, height, near_plane, far_plane, eps2d)


def _project_backward(ctx, grad_means2d, grad_depths, grad_conics, grad_radii):
    means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
    grads = torch.ops.ppt.project_gaussians_backward.default(
        _dense_grad(grad_means2d, radii.shape + (2,), means), _dense_grad(grad_depths, radii.shape, means),
        _dense_grad(grad_conics, radii.shape + (3,), means), means, quats, scales, viewmats, Ks, radii, *ctx.args)
    return (*grads, None, None, None, None, None, None, None)


def _sh_setup_context(ctx, inputs, output):
    sh, means, viewmats, degree = inputs
    ctx.save_for_backward(sh, means, viewmats)
    ctx.degree = degree


def _sh_backward(ctx, grad_colors):
    sh, means, viewmats = ctx.saved_tensors
    grad_sh, grad_means = torch.ops.ppt.spherical_harmonics_backward.default(
        grad_colors.contiguous(), sh, means, viewmats, ctx.degree)
    return grad_sh, grad_means, None, None


def _rasterize_setup_context(ctx, inputs, output):
    means2d, conics, colors, opacities, width, height, tile_size, alpha_cap, tile_offsets, flatten_ids, det = inputs
    _, alphas, last_ids = output
    ctx.save_for_backward(means2d, conics, colors, opacities, tile_offsets, flatten_ids, alphas, last_ids)
    ctx.args = (width, height, tile_size, alpha_cap)
    ctx.deterministic = det


def _rasterize_backward(ctx, grad_colors, grad_alphas, grad_last_ids):
    means2d, conics, colors, opacities, tile_offsets, flatten_ids, alphas, last_ids = ctx.saved_tensors
    width, height, tile_size, alpha_cap = ctx.args
    grads = torch.ops.ppt.rasterize_tiles_backward.default(
        _dense_grad(grad_colors, (colors.shape[0], height, width, colors.shape[2]), colors),
        _dense_grad(grad_alphas, alphas.shape, colors), means2d, conics, colors, opacities, width, height,
        tile_size, alpha_cap, tile_offsets, flatten_ids, alphas, last_ids, ctx.deterministic)
    return (*grads, None, None, None, None, None, None, None)


def _dense_grad(grad: Tensor | None, shape, like: Tensor) -> Tensor:
    """Autograd passes None for outputs that did not reach the loss; the kernels want zeros."""
    return like.new_zeros(shape) if grad is None else grad.contiguous()


torch.library.register_autograd("ppt::project_gaussians", _project_backward, setup_context=_project_setup_context)
torch.library.register_autograd("ppt::spherical_harmonics", _sh_backward, setup_context=_sh_setup_context)
torch.library.register_autograd("ppt::rasterize_tiles", _rasterize_backward, setup_context=_rasterize_setup_context)
# Double backward (create_graph=True through the rasterizer) is not implemented: differentiating a
# backward op raises, naming the op.
for _op in ("project_gaussians", "spherical_harmonics", "rasterize_tiles"):
    register_not_differentiable(
        f"{_op}_backward",
        f"ppt::{_op} (rasterize_gaussians): double backward is not implemented; gradients computed with "
        "create_graph=True cannot be differentiated again through the rasterizer")
