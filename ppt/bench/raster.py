"""Gaussian rasterizer benchmarks (issue 5): ppt.ops.rasterize_gaussians, one batched call per step.

Workloads (full configuration):
- object: the UniPre3D object step, 32 scenes x 4 cameras at 128x128, 1024 Gaussians per scene
  placed on an object point cloud, SH degree 1;
- scene: 4 scenes x 8 cameras at 160x120, 100k Gaussians per scene on an indoor scan, SH degree 1.

Each is timed forward and forward+backward against
(a) the dense pure-torch reference (on the first REFERENCE_SCENES scenes of the object workload,
    timed once: it takes seconds per scene; its backward runs scene by scene to fit in memory),
(b) a per-image Python loop over our own op (how the official UniPre3D code drives the Inria
    rasterizer),
(c) gsplat 1.5.x ``rasterization`` when it is importable (GPU machines; it JIT-compiles its CUDA
    code on first use, which the correctness check absorbs), reported skipped otherwise.
Throughput is in images per second; peak CUDA memory comes from the harness.

Run: ``ppt bench raster [--quick] [--device cpu|cuda]``.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from ppt.bench.harness import Baseline, Case, Unavailable
from ppt.data.synthetic import indoor_room, object_clouds
from ppt.ops import _reference as ref
from ppt.ops import rasterize_gaussians

SUITE = "raster"
SUPPORTED_DTYPES = ("float32",)
GSPLAT_HINT = "pip install gsplat==1.5.3 on a machine with CUDA (it compiles its kernels on first use)"


@dataclass(frozen=True)
class Workload:
    name: str
    scenes: int
    cams: int
    width: int
    height: int
    gaussians: int
    sh_degree: int = 1


FULL = [Workload("object", 32, 4, 128, 128, 1024), Workload("scene", 4, 8, 160, 120, 100_000)]
QUICK = [Workload("object", 4, 2, 64, 64, 256), Workload("scene", 2, 2, 80, 60, 5_000)]


def look_at(eyes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """World->camera matrices (OpenCV axes: x right, y down, z forward) for eyes looking at targets."""
    forward = torch.nn.functional.normalize(targets - eyes, dim=-1)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=eyes.dtype).expand_as(forward)
    right = torch.nn.functional.normalize(torch.cross(forward, up, dim=-1), dim=-1)
    down = torch.cross(forward, right, dim=-1)
    rotation = torch.stack([right, down, forward], dim=-2)
    viewmats = torch.eye(4, dtype=eyes.dtype).repeat(*eyes.shape[:-1], 1, 1)
    viewmats[..., :3, :3] = rotation
    viewmats[..., :3, 3] = -(rotation @ eyes[..., None])[..., 0]
    return viewmats


def make_inputs(w: Workload, device: torch.device, seed: int = 0) -> dict:
    """Gaussians on point clouds (object: unit objects; scene: indoor scans) and their cameras."""
    g = torch.Generator().manual_seed(seed)
    if w.name == "object":
        points = object_clouds(w.scenes, w.gaussians, seed=seed)
        scale = 0.02
        angles = torch.rand(w.scenes, w.cams, generator=g) * 2 * math.pi
        heights = torch.rand(w.scenes, w.cams, generator=g) * 1.0 - 0.5
        eyes = torch.stack([2.5 * torch.cos(angles), 2.5 * torch.sin(angles), heights], -1)
        targets = torch.zeros_like(eyes)
        focal = 1.2 * w.width
    else:
        points = torch.stack([indoor_room(w.gaussians, seed=seed + s) for s in range(w.scenes)])
        scale = 0.03
        centre = points.mean(1, keepdim=True)
        eyes = centre + torch.randn(w.scenes, w.cams, 3, generator=g) * torch.tensor([1.0, 1.0, 0.2])
        targets = eyes + torch.randn(w.scenes, w.cams, 3, generator=g) * torch.tensor([1.0, 1.0, 0.1])
        focal = 0.6 * w.width
    n = w.gaussians
    coeffs = (w.sh_degree + 1) ** 2
    inputs = dict(
        means=points.float(),
        quats=torch.randn(w.scenes, n, 4, generator=g),
        scales=scale * torch.exp(0.3 * torch.randn(w.scenes, n, 3, generator=g)),
        opacities=torch.sigmoid(torch.randn(w.scenes, n, generator=g)),
        colors=0.3 * torch.randn(w.scenes, n, coeffs, 3, generator=g),
        viewmats=look_at(eyes, targets).float(),
        Ks=torch.tensor([[focal, 0, w.width / 2], [0, focal, w.height / 2], [0, 0, 1]]).repeat(w.scenes, w.cams, 1, 1),
    )
    return {k: v.to(device) for k, v in inputs.items()}


DIFFERENTIABLE = ("means", "quats", "scales", "opacities", "colors")


def _leaves(inputs: dict, backward: bool) -> dict:
    return {k: (v.detach().requires_grad_() if backward and k in DIFFERENTIABLE else v) for k, v in inputs.items()}


def _finish(images: torch.Tensor, alphas: torch.Tensor, leaves: dict, backward: bool):
    if backward:
        (images.square().mean() + alphas.mean()).backward()
        return images.detach(), leaves["means"].grad
    return images.detach(), None


def ppt_step(w: Workload, inputs: dict, backward: bool):
    leaves = _leaves(inputs, backward)
    with torch.set_grad_enabled(backward):
        images, alphas, _ = rasterize_gaussians(**leaves, width=w.width, height=w.height, sh_degree=w.sh_degree)
    return _finish(images, alphas, leaves, backward)


def per_image_loop_step(w: Workload, inputs: dict, backward: bool):
    """One op call per (scene, camera), as a Python loop over images."""
    leaves = _leaves(inputs, backward)
    with torch.set_grad_enabled(backward):
        images, alphas = [], []
        for s in range(w.scenes):
            for c in range(w.cams):
                image, alpha, _ = rasterize_gaussians(
                    leaves["means"][s], leaves["quats"][s], leaves["scales"][s], leaves["opacities"][s],
                    leaves["colors"][s], leaves["viewmats"][s, c:c + 1], leaves["Ks"][s, c:c + 1], w.width, w.height,
                    sh_degree=w.sh_degree)
                images.append(image[0])
                alphas.append(alpha[0])
        shape = (w.scenes, w.cams, w.height, w.width)
        images = torch.stack(images).reshape(*shape, -1)
        alphas = torch.stack(alphas).reshape(*shape, 1)
    return _finish(images, alphas, leaves, backward)


def reference_step(w: Workload, inputs: dict, backward: bool):
    """Dense reference, scene by scene (the same loss, summed per scene, so gradients agree)."""
    leaves = _leaves(inputs, backward)
    images = []
    total_images = w.scenes * w.cams * w.height * w.width
    for s in range(w.scenes):
        with torch.set_grad_enabled(backward):
            image, alpha = ref.rasterize_gaussians(
                *(leaves[k][s] for k in ("means", "quats", "scales", "opacities", "colors", "viewmats", "Ks")),
                w.width, w.height, sh_degree=w.sh_degree)
            if backward:
                (image.square().sum() / (total_images * image.shape[-1]) + alpha.sum() / total_images).backward()
        images.append(image.detach())
    return torch.stack(images), leaves["means"].grad if backward else None


def gsplat_step(w: Workload, inputs: dict, backward: bool):
    import gsplat

    leaves = _leaves(inputs, backward)
    with torch.set_grad_enabled(backward):
        images, alphas, _ = gsplat.rasterization(
            leaves["means"], leaves["quats"], leaves["scales"], leaves["opacities"], leaves["colors"],
            leaves["viewmats"], leaves["Ks"], w.width, w.height, sh_degree=w.sh_degree, packed=False)
    return _finish(images, alphas, leaves, backward)


def _gsplat(device: torch.device, step) -> Baseline | Unavailable:
    if device.type != "cuda":
        return Unavailable("gsplat", "runs on CUDA only")
    if importlib.util.find_spec("gsplat") is None:
        return Unavailable("gsplat", "not installed", GSPLAT_HINT)
    return Baseline("gsplat", step, check=_check_gsplat, target=1.0)


def _check_exact(got, base):
    torch.testing.assert_close(got[0], base[0], rtol=1e-5, atol=1e-5)
    if got[1] is not None:
        torch.testing.assert_close(got[1], base[1], rtol=1e-3, atol=1e-6)


def _check_reference(got, base):
    # In float32, a splat whose alpha lies within an ulp of 1/255 (torch's vectorized exp vs libm)
    # may be kept by one side and skipped by the other; over millions of pixel-splat pairs a few
    # such pixels are expected, so the check bounds their share and size instead of every pixel.
    difference = (got[0] - base[0]).abs()
    share = (difference > 1e-4).double().mean().item()
    assert share < 1e-4 and difference.max().item() < 0.05, (
        f"ppt and the reference differ on {share:.2e} of the pixels (max {difference.max().item():.3g})")
    if got[1] is not None:
        relative = ((got[1] - base[1]).norm() / base[1].norm().clamp_min(1e-30)).item()
        assert relative < 1e-2, f"means gradients differ by {relative:.3g} (relative norm)"


def _check_gsplat(got, base):
    # gsplat's conventions differ slightly (radius 3.33 sigma, off-centre Jacobian clamp): images
    # must agree on average, not bit for bit.
    difference = (got[0] - base[0]).abs().mean().item()
    assert difference < 1e-2, f"ppt and gsplat images differ by {difference:.3g} on average"


# The dense reference takes about 6 s per object scene forward and 13 s forward+backward on a
# 2-core CPU, so it is compared on the first scenes of the object workload only (same images per
# scene, same Gaussians), timed once after the correctness check.
REFERENCE_SCENES = 4


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    return SUPPORTED_DTYPES


def _params(w: Workload, backward: bool) -> dict:
    return dict(scenes=w.scenes, cams=w.cams, width=w.width, height=w.height, gaussians=w.gaussians,
                sh_degree=w.sh_degree, backward=backward)


def cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    repeats, warmup = (3, 1) if quick else (5, 1)
    for w in QUICK if quick else FULL:
        inputs = make_inputs(w, device)
        for backward in (False, True):
            pass_name = "fwd+bwd" if backward else "fwd"

            def step(fn, work=w, data=inputs, backward=backward):
                return lambda: fn(work, data, backward)

            yield Case(
                name=f"{w.name} {pass_name} {w.scenes * w.cams} images", run=step(ppt_step),
                baselines=[Baseline("per-image loop", step(per_image_loop_step), check=_check_exact),
                           _gsplat(device, step(gsplat_step))],
                params=_params(w, backward), items=(w.scenes * w.cams, "images"), warmup=warmup, repeats=repeats)
            if w.name == "object":
                # The dense reference takes seconds per scene: its own case on a few scenes, timed once
                # (its correctness run is its warm-up).
                subset = replace(w, scenes=min(w.scenes, REFERENCE_SCENES))
                subset_inputs = make_inputs(subset, device)
                yield Case(
                    name=f"object {pass_name} {subset.scenes * subset.cams} images (reference subset)",
                    run=step(ppt_step, subset, subset_inputs),
                    baselines=[Baseline("torch reference", step(reference_step, subset, subset_inputs),
                                        check=_check_reference, target=None if device.type == "cuda" else 50.0,
                                        repeats=1)],
                    params=_params(subset, backward), items=(subset.scenes * subset.cams, "images"), warmup=0,
                    repeats=repeats)
