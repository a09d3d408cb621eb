"""Gaussian rasterizer (ppt.ops.rasterize_gaussians) against the dense pure-PyTorch reference."""

import math

import pytest
import torch

from ppt.ops import _reference as ref
from ppt.ops import rasterize_gaussians
from ppt.ops.raster import bin_gaussians, project_gaussians, rasterize_tiles, spherical_harmonics

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-11)}
# float32 backward recovers transmittance by division (as gsplat and Inria do), which loses a few
# digits behind nearly opaque splats; float64 pins the formulas down.
GRAD_TOL = {torch.float32: dict(rtol=1e-2, atol=2e-3), torch.float64: dict(rtol=1e-8, atol=1e-10)}


def make_scene(batch=(2,), n=30, cams=3, width=24, height=20, dtype=torch.float64, device="cpu", sh_coeffs=None,
               focal=30.0, spread=0.6):
    """Random Gaussians around the origin seen by cameras on the -z side looking along +z."""
    g = torch.Generator().manual_seed(0)
    means = torch.randn(*batch, n, 3, generator=g, dtype=torch.float64) * spread
    quats = torch.randn(*batch, n, 4, generator=g, dtype=torch.float64)
    scales = torch.rand(*batch, n, 3, generator=g, dtype=torch.float64) * 0.2 + 0.05
    opacities = torch.rand(*batch, n, generator=g, dtype=torch.float64) * 0.9 + 0.05
    if sh_coeffs is None:
        colors = torch.rand(*batch, n, 3, generator=g, dtype=torch.float64)
    else:
        colors = torch.randn(*batch, n, sh_coeffs, 3, generator=g, dtype=torch.float64) * 0.3
    viewmats = torch.eye(4, dtype=torch.float64).repeat(*batch, cams, 1, 1)
    angle = torch.rand(*batch, cams, generator=g, dtype=torch.float64) * 0.6 - 0.3
    viewmats[..., 0, 0] = torch.cos(angle)
    viewmats[..., 0, 2] = torch.sin(angle)
    viewmats[..., 2, 0] = -torch.sin(angle)
    viewmats[..., 2, 2] = torch.cos(angle)
    viewmats[..., 0, 3] = 0.2 * torch.randn(*batch, cams, generator=g, dtype=torch.float64)
    viewmats[..., 2, 3] = 3.0 + torch.rand(*batch, cams, generator=g, dtype=torch.float64)
    Ks = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=torch.float64)
    Ks = Ks.repeat(*batch, cams, 1, 1)
    tensors = [t.to(dtype=dtype, device=device) for t in (means, quats, scales, opacities, colors, viewmats, Ks)]
    return (*tensors, width, height)


def scene_case(case, dtype, device):
    """(positional args, keyword args) of rasterize_gaussians for a named case."""
    if case == "empty":
        return make_scene(n=0, dtype=dtype, device=device), {}
    if case == "no_scenes":
        return make_scene(batch=(0,), n=5, dtype=dtype, device=device), {}
    if case == "no_cameras":
        return make_scene(cams=0, n=5, dtype=dtype, device=device), {}
    if case == "single":
        return make_scene(batch=(1,), n=1, cams=1, dtype=dtype, device=device), {}
    if case == "scene":
        return make_scene(dtype=dtype, device=device), {}
    if case == "duplicates":  # identical Gaussians (equal depths keep index order), distinct colours
        args = list(make_scene(n=6, dtype=dtype, device=device))
        for i in (0, 1, 2):
            args[i] = args[i][..., :1, :].expand_as(args[i]).contiguous()
        args[3] = args[3][..., :1].expand_as(args[3]).contiguous()
        return tuple(args), {}
    if case == "culled":  # behind the camera, beyond far, far outside the image, near-degenerate
        args = list(make_scene(n=12, dtype=dtype, device=device))
        args[0] = args[0].clone()
        args[0][..., 0, 2] = -10.0  # behind every camera
        args[0][..., 1, 2] = 50.0  # beyond far_plane=20
        args[0][..., 2, 0] = 80.0  # outside the image
        args[2] = args[2].clone()
        args[2][..., 3, :] = 0.0  # zero scales: only eps2d keeps the 2D covariance invertible
        args[2][..., 4, :2] = 0.0  # a flat splat
        return tuple(args), dict(far_plane=20.0)
    if case == "non_contiguous":  # transposed storage and a strided batch dim
        args = list(make_scene(batch=(4,), dtype=dtype, device=device))
        for i in (0, 1, 2, 4):
            args[i] = args[i].transpose(-1, -2).contiguous().transpose(-1, -2)
        args = [a[::2] if torch.is_tensor(a) else a for a in args]
        assert not args[0].is_contiguous() and not args[3].is_contiguous()
        return tuple(args), {}
    if case == "batch_2d":
        return make_scene(batch=(2, 2), n=10, cams=2, dtype=dtype, device=device), {}
    if case == "no_batch":
        return make_scene(batch=(), n=10, cams=2, dtype=dtype, device=device), {}
    if case == "big_splats":  # many tiles per Gaussian, saturating pixels (transmittance stop)
        args = list(make_scene(n=40, width=40, height=33, dtype=dtype, device=device))
        args[2] = args[2] * 4
        args[3] = torch.full_like(args[3], 0.98)
        return tuple(args), dict(tile_size=8)
    raise ValueError(case)


CASES = ["empty", "no_scenes", "no_cameras", "single", "scene", "duplicates", "culled", "non_contiguous", "batch_2d", "no_batch", "big_splats"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_reference(case, dtype, device):
    args, kwargs = scene_case(case, dtype, device)
    colors, alphas, meta = rasterize_gaussians(*args, **kwargs)
    ref_colors, ref_alphas = ref.rasterize_gaussians(*args, **kwargs)
    batch, cams, width, height = args[0].shape[:-2], args[5].shape[-3], args[-2], args[-1]
    assert colors.shape == (*batch, cams, height, width, 3) and alphas.shape == (*batch, cams, height, width, 1)
    assert colors.dtype == dtype and colors.device == args[0].device
    torch.testing.assert_close(colors, ref_colors, **TOL[dtype])
    torch.testing.assert_close(alphas, ref_alphas, **TOL[dtype])
    assert meta["radii"].shape == (*batch, cams, args[0].shape[-2]) and meta["radii"].dtype == torch.int32


def _weighted_loss(colors, alphas):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(colors.shape, generator=g, dtype=torch.float64).to(colors)
    wa = torch.randn(alphas.shape, generator=g, dtype=torch.float64).to(alphas)
    return (colors * w).sum() + (alphas * wa).sum()


def _gradients(fn, args, kwargs, grad_args=(0, 1, 2, 3, 4)):
    args = list(args)
    leaves = []
    for i in grad_args:
        args[i] = args[i].detach().clone().requires_grad_()
        leaves.append(args[i])
    if kwargs.get("backgrounds") is not None:
        kwargs = dict(kwargs, backgrounds=kwargs["backgrounds"].detach().clone().requires_grad_())
        leaves.append(kwargs["backgrounds"])
    colors, alphas = fn(*args, **kwargs)[:2]
    grads = torch.autograd.grad(_weighted_loss(colors, alphas), leaves, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves)]


@pytest.mark.parametrize("case", ["empty", "single", "scene", "duplicates", "culled", "non_contiguous", "batch_2d", "big_splats"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_reference(case, dtype, device):
    args, kwargs = scene_case(case, dtype, device)
    got = _gradients(rasterize_gaussians, args, kwargs)
    expected = _gradients(ref.rasterize_gaussians, args, kwargs)
    for name, a, b in zip(["means", "quats", "scales", "opacities", "colors"], got, expected):
        torch.testing.assert_close(a, b, **GRAD_TOL[dtype], msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("render_mode", ["RGB", "D", "ED", "RGB+D", "RGB+ED"])
@pytest.mark.parametrize("sh_degree", [None, 0, 1, 2, 3])
def test_render_modes_and_sh_degrees(render_mode, sh_degree, device):
    args = make_scene(n=20, device=device, sh_coeffs=None if sh_degree is None else 16)
    kwargs = dict(render_mode=render_mode, sh_degree=sh_degree, tile_size=8)
    if render_mode not in ("D", "ED"):
        kwargs["backgrounds"] = torch.rand(2, 3, 3, dtype=torch.float64, device=device)
    colors, alphas, _ = rasterize_gaussians(*args, **kwargs)
    ref_colors, ref_alphas = ref.rasterize_gaussians(*args, **kwargs)
    channels = {"RGB": 3, "D": 1, "ED": 1, "RGB+D": 4, "RGB+ED": 4}[render_mode]
    assert colors.shape[-1] == channels
    torch.testing.assert_close(colors, ref_colors, **TOL[torch.float64])
    torch.testing.assert_close(alphas, ref_alphas, **TOL[torch.float64])
    got = _gradients(rasterize_gaussians, args, kwargs)
    expected = _gradients(ref.rasterize_gaussians, args, kwargs)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **GRAD_TOL[torch.float64])


@pytest.mark.parametrize("tile_size", [1, 5, 16, 32])
@pytest.mark.parametrize("channels", [1, 4, 37])
def test_tile_sizes_and_feature_channels(tile_size, channels, device):
    # Odd tile sizes give partial warps on CUDA; more than 32 channels are rendered in chunks.
    args = list(make_scene(n=15, width=37, height=21, device=device))
    args[4] = torch.rand(2, 15, channels, dtype=torch.float64, device=device)
    kwargs = dict(tile_size=tile_size)
    colors, alphas, meta = rasterize_gaussians(*args, **kwargs)
    ref_colors, ref_alphas = ref.rasterize_gaussians(*args, **kwargs)
    assert meta["tile_offsets"].shape == (6, -(-21 // tile_size), -(-37 // tile_size))
    torch.testing.assert_close(colors, ref_colors, **TOL[torch.float64])
    torch.testing.assert_close(alphas, ref_alphas, **TOL[torch.float64])
    got = _gradients(rasterize_gaussians, args, kwargs)
    expected = _gradients(ref.rasterize_gaussians, args, kwargs)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **GRAD_TOL[torch.float64])


def test_sh_uses_only_the_coefficients_of_the_degree(device):
    # K = 16 coefficients rendered at degree 1 ignore coefficients 4..15 (progressive SH training).
    args = list(make_scene(n=10, device=device, sh_coeffs=16))
    low, _, _ = rasterize_gaussians(*args, sh_degree=1)
    args[4] = args[4].clone()
    args[4][..., 4:, :] = 5.0
    high, _, _ = rasterize_gaussians(*args, sh_degree=1)
    torch.testing.assert_close(low, high, rtol=0, atol=0)


def test_sh_degree_zero_is_the_dc_colour(device):
    sh = torch.randn(1, 4, 1, 3, dtype=torch.float64, device=device)
    means = torch.randn(1, 4, 3, dtype=torch.float64, device=device)
    viewmats = torch.eye(4, dtype=torch.float64, device=device).repeat(1, 2, 1, 1)
    colors = spherical_harmonics(sh, means, viewmats, 0)
    expected = (0.28209479177387814 * sh[:, None, :, 0, :] + 0.5).clamp_min(0).expand(1, 2, 4, 3)
    torch.testing.assert_close(colors, expected, rtol=1e-12, atol=1e-12)


def test_gradcheck_tiny_scene(device):
    """float64 finite differences on a scene without threshold crossings: large, translucent
    splats in one tile, so every pixel sees every Gaussian above 1/255 and below alpha_cap."""
    means = torch.tensor([[[0.1, -0.05, 0.0], [-0.2, 0.1, 0.3], [0.05, 0.15, -0.2]]], dtype=torch.float64)
    quats = torch.tensor([[[1.0, 0.1, -0.2, 0.3], [0.7, 0.2, 0.1, -0.1], [0.9, -0.3, 0.2, 0.1]]], dtype=torch.float64)
    scales = torch.tensor([[[0.6, 0.5, 0.4], [0.5, 0.7, 0.6], [0.8, 0.5, 0.6]]], dtype=torch.float64)
    opacities = torch.tensor([[0.5, 0.4, 0.6]], dtype=torch.float64)
    sh = torch.randn(1, 3, 4, 3, dtype=torch.float64) * 0.2
    viewmats = torch.eye(4, dtype=torch.float64)[None, None].repeat(1, 2, 1, 1)
    viewmats[0, :, 2, 3] = torch.tensor([3.0, 3.5])
    viewmats[0, 1, 0, 3] = 0.3
    Ks = torch.tensor([[8.0, 0, 4.0], [0, 8.0, 3.0], [0, 0, 1]], dtype=torch.float64).repeat(1, 2, 1, 1)
    backgrounds = torch.rand(1, 2, 3, dtype=torch.float64)
    inputs = [t.to(device).requires_grad_() for t in (means, quats, scales, opacities, sh, backgrounds)]
    viewmats, Ks = viewmats.to(device), Ks.to(device)

    def render(m, q, s, o, c, bg):
        colors, alphas, _ = rasterize_gaussians(m, q, s, o, c, viewmats, Ks, 8, 6, sh_degree=1, backgrounds=bg,
                                                render_mode="RGB+ED")
        return colors, alphas

    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6)


def test_batched_call_equals_separate_calls(device):
    args = make_scene(batch=(3,), n=25, cams=4, device=device, sh_coeffs=4)
    backgrounds = torch.rand(3, 4, 3, dtype=torch.float64, device=device)
    colors, alphas, meta = rasterize_gaussians(*args, sh_degree=1, backgrounds=backgrounds)
    means, quats, scales, opacities, sh, viewmats, Ks, width, height = args
    for s in range(3):
        for c in range(4):
            one = rasterize_gaussians(means[s], quats[s], scales[s], opacities[s], sh[s], viewmats[s, c:c + 1],
                                      Ks[s, c:c + 1], width, height, sh_degree=1, backgrounds=backgrounds[s, c:c + 1])
            torch.testing.assert_close(colors[s, c], one[0][0], rtol=0, atol=0)
            torch.testing.assert_close(alphas[s, c], one[1][0], rtol=0, atol=0)
            torch.testing.assert_close(meta["radii"][s, c], one[2]["radii"][0], rtol=0, atol=0)


def test_meta_and_means2d_gradient(device):
    args = make_scene(n=15, device=device, width=32, height=32)
    means = args[0].clone().requires_grad_()
    colors, alphas, meta = rasterize_gaussians(means, *args[1:], retain_means2d_grad=True, tile_size=16)
    _weighted_loss(colors, alphas).backward()
    assert meta["means2d"].shape == (2, 3, 15, 2) and meta["means2d"].grad is not None
    visible = meta["radii"] > 0
    assert visible.any() and (meta["means2d"].grad[~visible] == 0).all()
    # tile counts agree with the 3-sigma boxes clipped to the 2x2 tile grid
    r = meta["radii"].double()
    u, v = meta["means2d"].detach().unbind(-1)
    span_x = (torch.ceil((u + r) / 16).clamp(0, 2) - torch.floor((u - r) / 16).clamp(0, 2))
    span_y = (torch.ceil((v + r) / 16).clamp(0, 2) - torch.floor((v - r) / 16).clamp(0, 2))
    expected = torch.where(visible, span_x * span_y, torch.zeros_like(r)).int()
    torch.testing.assert_close(meta["tiles_per_gaussian"], expected)
    assert meta["flatten_ids"].numel() == int(expected.sum())
    assert meta["tile_offsets"].shape == (6, 2, 2)


def test_culled_gaussians_have_zero_radius(device):
    args, kwargs = scene_case("culled", torch.float64, device)
    _, _, meta = rasterize_gaussians(*args, **kwargs)
    assert (meta["radii"][..., :3] == 0).all()
    assert (meta["radii"][..., 3] > 0).any()  # zero scales survive thanks to eps2d


@pytest.mark.parametrize("tile_size, channels", [(16, 3), (5, 37)])
def test_deterministic_backward_is_reproducible(tile_size, channels, device):
    args = list(make_scene(n=40, dtype=torch.float32, device=device))
    args[4] = torch.rand(2, 40, channels, device=device)
    deterministic = lambda *a, **k: rasterize_gaussians(*a, **k, tile_size=tile_size, deterministic=True)  # noqa: E731
    first = _gradients(deterministic, args, {})
    second = _gradients(deterministic, args, {})
    expected = _gradients(ref.rasterize_gaussians, args, dict(tile_size=tile_size))
    for a, b, c in zip(first, second, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, **GRAD_TOL[torch.float32])


def test_per_camera_colors(device):
    args = list(make_scene(n=12, device=device))
    args[4] = torch.rand(2, 3, 12, 5, dtype=torch.float64, device=device)  # (..., C, N, D)
    colors, alphas, _ = rasterize_gaussians(*args)
    ref_colors, ref_alphas = ref.rasterize_gaussians(*args)
    torch.testing.assert_close(colors, ref_colors, **TOL[torch.float64])
    got = _gradients(rasterize_gaussians, args, {})
    expected = _gradients(ref.rasterize_gaussians, args, {})
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **GRAD_TOL[torch.float64])


def test_pixel_centres_and_alpha_cap(device):
    # One opaque isotropic splat centred on pixel (2, 1)'s centre (2.5, 1.5): that pixel gets
    # alpha = alpha_cap exactly, its colour times alpha_cap, and background (1 - alpha_cap) * bg.
    means = torch.tensor([[[0.0, 0.0, 2.0]]], dtype=torch.float64, device=device)
    quats = torch.tensor([[[1.0, 0, 0, 0]]], dtype=torch.float64, device=device)
    scales = torch.full((1, 1, 3), 0.05, dtype=torch.float64, device=device)
    opacities = torch.ones(1, 1, dtype=torch.float64, device=device)
    colors = torch.tensor([[[0.2, 0.4, 0.6]]], dtype=torch.float64, device=device)
    viewmats = torch.eye(4, dtype=torch.float64, device=device)[None, None]
    Ks = torch.tensor([[[[20.0, 0, 2.5], [0, 20.0, 1.5], [0, 0, 1]]]], dtype=torch.float64, device=device)
    bg = torch.tensor([[[1.0, 1.0, 1.0]]], dtype=torch.float64, device=device)
    out, alphas, meta = rasterize_gaussians(means, quats, scales, opacities, colors, viewmats, Ks, 6, 4,
                                            backgrounds=bg, alpha_cap=0.9)
    torch.testing.assert_close(meta["means2d"][0, 0, 0], torch.tensor([2.5, 1.5], dtype=torch.float64, device=device))
    assert alphas[0, 0, 1, 2, 0].item() == pytest.approx(0.9)
    torch.testing.assert_close(out[0, 0, 1, 2], colors[0, 0] * 0.9 + 0.1 * bg[0, 0])
    # radius = ceil(3 sqrt(lambda_max)) of the 2D covariance (0.5^2 + eps2d on the diagonal)
    assert meta["radii"].item() == math.ceil(3 * math.sqrt(0.5 ** 2 + 0.3))


# ---------------------------------------------------------------------------------------------
# bad input


def _bad(args, **changes):
    names = ["means", "quats", "scales", "opacities", "colors", "viewmats", "Ks", "width", "height"]
    values = dict(zip(names, args))
    values.update(changes)
    return values


BAD_CASES = [
    (dict(means="nan"), RuntimeError, "means contains NaN or Inf"),
    (dict(scales="inf"), RuntimeError, "scales contains NaN or Inf"),
    (dict(quats="zero"), RuntimeError, "all-zero quaternion"),
    (dict(Ks="zero_focal"), RuntimeError, "positive focal lengths"),
    (dict(width=0), RuntimeError, r"width and height must be in \[1, 32768\]"),
    (dict(height=-3), RuntimeError, "width and height must be in"),
    (dict(width=40000), RuntimeError, "width and height must be in"),
    (dict(quats="short_batch"), ValueError, r"quats must have shape \(\.\.\., N, 4\)"),
    (dict(Ks="other_batch"), ValueError, r"Ks must have shape \(\.\.\., C, 3, 3\)"),
    (dict(opacities="extra_dim"), ValueError, r"opacities must have shape \(\.\.\., N\)"),
    (dict(colors="sh_short", sh_degree=2), RuntimeError, r"sh_degree=2 needs K >= 9"),
    (dict(colors="sh_short", sh_degree=4), RuntimeError, r"sh_degree must be in \[0, 3\]"),
    (dict(colors="rgb_bad"), ValueError, r"colors must have shape \(\.\.\., N, D\)"),
    (dict(render_mode="RGBD"), ValueError, "render_mode must be one of"),
    (dict(render_mode="D", backgrounds="rgb"), ValueError, "backgrounds apply to colour channels"),
    (dict(tile_size=0), RuntimeError, r"tile_size must be in \[1, 32\]"),
    (dict(alpha_cap=1.0), RuntimeError, r"alpha_cap must be in \(0, 1\)"),
    (dict(near_plane=0.0), RuntimeError, "near_plane must be positive"),
    (dict(means="half"), RuntimeError, "means must be float32 or float64"),
    (dict(quats="nan"), RuntimeError, "quats contains NaN or Inf"),
    (dict(opacities="nan"), RuntimeError, "opacities contains NaN or Inf"),
    (dict(opacities="above_one"), RuntimeError, r"opacities must be in \[0, 1\] .*got values in \[.*, 1.5\]"),
    (dict(opacities="negative"), RuntimeError, r"opacities must be in \[0, 1\] .*got values in \[-0.25, "),
    (dict(width=32.0), TypeError, "rasterize_gaussians: width must be an int, got float 32.0"),
    (dict(height=True), TypeError, "rasterize_gaussians: height must be an int, got bool True"),
    (dict(tile_size=8.0), TypeError, "rasterize_gaussians: tile_size must be an int, got float 8.0"),
    (dict(colors="sh_short", sh_degree=1.0), TypeError, "rasterize_gaussians: sh_degree must be an int, got float"),
    (dict(eps2d=None), TypeError, "rasterize_gaussians: eps2d must be a real number, got NoneType"),
    (dict(deterministic=1), TypeError, "rasterize_gaussians: deterministic must be a bool, got int 1"),
]


@pytest.mark.parametrize("changes, error, message", BAD_CASES)
def test_bad_input(changes, error, message, device):
    args = make_scene(n=5, device=device, sh_coeffs=4 if "sh_degree" in changes else None)
    values = _bad(args, **{k: v for k, v in changes.items() if not isinstance(v, str) or k == "render_mode"})
    kind = {k: v for k, v in changes.items() if isinstance(v, str) and k != "render_mode"}
    for name, what in kind.items():
        t = values.get(name)
        if what == "nan":
            values[name] = t.clone().index_fill_(-2, torch.tensor([1], device=device), float("nan"))
        elif what == "inf":
            values[name] = t.clone().index_fill_(-2, torch.tensor([2], device=device), float("inf"))
        elif what == "zero":
            values[name] = t.clone().index_fill_(-2, torch.tensor([0], device=device), 0.0)
        elif what == "zero_focal":
            values[name] = t.clone()
            values[name][0, 1, 1, 1] = 0.0
        elif what == "short_batch":
            values[name] = t[:1]
        elif what == "other_batch":
            values[name] = t[..., :2, :, :]
        elif what == "extra_dim":
            values[name] = t[..., None]
        elif what == "sh_short":
            values[name] = torch.randn(2, 5, 4, 3, dtype=torch.float64, device=device)
        elif what == "rgb_bad":
            values[name] = t[:, :4]
        elif what == "rgb":
            values[name] = torch.zeros(2, 3, 3, dtype=torch.float64, device=device)
        elif what in ("above_one", "negative"):
            values[name] = t.clone()
            values[name][0, 0] = 1.5 if what == "above_one" else -0.25
        elif what == "half":
            values = {k: v.half() if torch.is_tensor(v) else v for k, v in values.items()}
    with pytest.raises(error, match=message):
        rasterize_gaussians(**values)


# ---------------------------------------------------------------------------------------------
# registration: opcheck and torch.compile


def test_opcheck_raster_ops(device):
    means, quats, scales, opacities, colors, viewmats, Ks, width, height = make_scene(n=12, device=device)
    sh = torch.randn(2, 12, 9, 3, dtype=torch.float64, device=device)
    leaf = lambda t: t.clone().requires_grad_()  # noqa: E731
    project_args = (leaf(means), leaf(quats), leaf(scales), viewmats, Ks, width, height, 0.01, 1e10, 0.3)
    torch.library.opcheck(torch.ops.ppt.project_gaussians.default, project_args)
    torch.library.opcheck(torch.ops.ppt.spherical_harmonics.default, (leaf(sh), leaf(means), viewmats, 2))
    means2d, depths, conics, radii = project_gaussians(means, quats, scales, viewmats, Ks, width, height)
    images = 6
    bins = bin_gaussians(means2d.reshape(images, 12, 2), radii.reshape(images, 12), depths.reshape(images, 12),
                         width, height, 8)
    torch.library.opcheck(torch.ops.ppt.bin_gaussians.default,
                          (means2d.reshape(images, 12, 2), radii.reshape(images, 12), depths.reshape(images, 12),
                           width, height, 8))
    raster_args = (leaf(means2d.reshape(images, 12, 2)), leaf(conics.reshape(images, 12, 3)),
                   leaf(torch.rand(images, 12, 5, dtype=torch.float64, device=device)),
                   leaf(opacities.repeat_interleave(3, 0)), width, height, 8, 0.99, bins[1], bins[2], False)
    torch.library.opcheck(torch.ops.ppt.rasterize_tiles.default, raster_args)


def test_torch_compile_render_step(device):
    args = make_scene(n=20, dtype=torch.float32, device=device, sh_coeffs=4)

    def step(means, quats, scales, opacities, sh, viewmats, Ks):
        colors, alphas, _ = rasterize_gaussians(means, quats, scales, opacities, sh, viewmats, Ks, args[7], args[8],
                                                sh_degree=1, render_mode="RGB+ED")
        return colors.square().mean() + alphas.mean()

    leaves = [t.clone().requires_grad_() for t in args[:5]]
    compiled = torch.compile(step, backend="aot_eager")
    loss = compiled(*leaves, *args[5:7])
    grads = torch.autograd.grad(loss, leaves)
    eager_loss = step(*leaves, *args[5:7])
    eager_grads = torch.autograd.grad(eager_loss, leaves)
    torch.testing.assert_close(loss, eager_loss)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# module


def test_gaussian_renderer_module(device):
    from ppt.nn import GaussianRenderer

    args = make_scene(n=12, device=device, sh_coeffs=4)
    renderer = GaussianRenderer(args[7], args[8], sh_degree=1, background=(1.0, 1.0, 1.0), render_mode="RGB+D").to(device)
    colors, alphas, meta = renderer(*args[:7])
    expected, expected_alphas = ref.rasterize_gaussians(
        *args, sh_degree=1, render_mode="RGB+D", backgrounds=torch.ones(2, 3, 3, dtype=torch.float64, device=device))
    torch.testing.assert_close(colors, expected, **TOL[torch.float64])
    torch.testing.assert_close(alphas, expected_alphas, **TOL[torch.float64])
    assert "radii" in meta and "GaussianRenderer(24x20" in repr(renderer)
    with pytest.raises(ValueError, match="render_mode must be one of"):
        GaussianRenderer(8, 8, render_mode="rgb")
