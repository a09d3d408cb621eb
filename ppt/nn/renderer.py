"""GaussianRenderer: the differentiable Gaussian rasterizer as a module for models."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ppt.ops._args import as_int
from ppt.ops.raster import RENDER_MODES, rasterize_gaussians


class GaussianRenderer(nn.Module):
    """Renders a batch of Gaussian scenes, each into its own batch of cameras, in one call.

    The module holds the image size and rasterization settings; per-step data (Gaussians and
    cameras) are forward arguments. Inputs are activated parameters: unit-free ``scales`` (not
    log-scales), ``opacities`` in [0, 1]. See :func:`ppt.ops.rasterize_gaussians` for shapes.

    Args:
        width, height: image size in pixels.
        sh_degree: ``None`` for direct colours, else the SH degree (0..3) of ``colors``.
        background: optional constant colour (length D) behind the Gaussians of every image.
        near_plane, far_plane, eps2d, alpha_cap, render_mode, tile_size, deterministic: as in
            :func:`ppt.ops.rasterize_gaussians`.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        sh_degree: int | None = None,
        background: Sequence[float] | Tensor | None = None,
        near_plane: float = 0.01,
        far_plane: float = 1e10,
        eps2d: float = 0.3,
        alpha_cap: float = 0.99,
        render_mode: str = "RGB",
        tile_size: int = 16,
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        if render_mode not in RENDER_MODES:
            raise ValueError(f"GaussianRenderer: render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
        self.width = as_int(width, "width", "GaussianRenderer", minimum=1)
        self.height = as_int(height, "height", "GaussianRenderer", minimum=1)
        self.sh_degree = sh_degree
        self.near_plane, self.far_plane, self.eps2d, self.alpha_cap = near_plane, far_plane, eps2d, alpha_cap
        self.render_mode, self.tile_size, self.deterministic = render_mode, tile_size, deterministic
        background_tensor = None if background is None else torch.as_tensor(background, dtype=torch.float32)
        self.register_buffer("background", background_tensor, persistent=False)

    def forward(self, means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                viewmats: Tensor, Ks: Tensor, backgrounds: Tensor | None = None) -> tuple[Tensor, Tensor, dict]:
        """``means`` (..., N, 3), ``quats`` (..., N, 4), ``scales`` (..., N, 3), ``opacities``
        (..., N), ``colors`` (..., N, D) or SH (..., N, K, 3), ``viewmats`` (..., C, 4, 4), ``Ks``
        (..., C, 3, 3) -> images (..., C, H, W, D'), alphas (..., C, H, W, 1), meta. ``backgrounds``
        (..., C, D) overrides the module's constant background."""
        if backgrounds is None and self.background is not None:
            backgrounds = self.background.to(means.dtype).expand(*viewmats.shape[:-2], self.background.shape[-1])
        return rasterize_gaussians(
            means, quats, scales, opacities, colors, viewmats, Ks, self.width, self.height,
            sh_degree=self.sh_degree, near_plane=self.near_plane, far_plane=self.far_plane, eps2d=self.eps2d,
            alpha_cap=self.alpha_cap, backgrounds=backgrounds, render_mode=self.render_mode,
            tile_size=self.tile_size, deterministic=self.deterministic,
        )

    def extra_repr(self) -> str:
        return (f"{self.width}x{self.height}, sh_degree={self.sh_degree}, render_mode={self.render_mode!r}, "
                f"tile_size={self.tile_size}")
