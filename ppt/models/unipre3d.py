"""UniPre3D (Wang et al., CVPR 2025): pre-train a point backbone by predicting one 3D Gaussian per
primitive (point, group centre or voxel), splatting the Gaussians into several views and comparing
the renders with the images; features of the reference view from a frozen 2D encoder are fused into
the point features (github.com/wangzy22/UniPre3D).

This module holds the parts every level shares and the object-level model:

* :class:`GaussianHead`: MLP from per-primitive features to the 23 Gaussian channels and their
  activations; :class:`Gaussians` is its output.
* :func:`nearest_point_pixels` and :class:`PixelFeatureFusion`: project the primitives into the
  reference view, keep the nearest one per pixel, concatenate that pixel's feature, Linear + ReLU.
* :func:`weighted_l2_loss`: squared error weighted 4 (object pixels) to 1 (background pixels).
* :class:`UniPre3D`: the object-level model, the Point-MAE transformer with Gaussians at its group
  centres; every object x view of a batch is rendered in one :class:`ppt.nn.GaussianRenderer` call.
* :class:`UniPre3DPointMLP`: the object-level model on PointMLP, a Gaussian per input point.

Conventions are ppt's (docs/ops.md): ``viewmats`` world -> camera with OpenCV axes, pixel ``(u, v)``
centred at ``(u + 0.5, v + 0.5)``, images ``(..., H, W, 3)`` in [0, 1]. docs/unipre3d.md lists where
this code departs from the official one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppt.models.image_encoders import FeatureAdapter, ImageEncoder, create_image_encoder
from ppt.models.point_mae import PointMAE
from ppt.nn import GaussianRenderer

__all__ = [
    "Gaussians", "GaussianHead", "gaussian_channels", "nearest_point_pixels", "PixelFeatureFusion",
    "weighted_l2_loss", "pixel_feature_maps", "GaussianPretrainer", "UniPre3D", "UniPre3DPointMLP", "UNIPRE3D_POINTMLP",
]

OFFSET_SCALE = {"object": 1.0, "scene": 0.2}
"""The official bound of the predicted centre offsets (``tanh(x) * offset_scale``) per level."""

INRIA_NEAR_PLANE = 0.2
"""The depth below which the official rasterizer (Inria's) culls a Gaussian; it culls at no far plane."""


class Gaussians(NamedTuple):
    """A batch of Gaussian scenes, activated and ready for :func:`ppt.ops.rasterize_gaussians`.

    Attributes:
        means: ``(..., N, 3)`` centres.
        quats: ``(..., N, 4)`` unit quaternions, ``(w, x, y, z)``.
        scales: ``(..., N, 3)`` standard deviations.
        opacities: ``(..., N)`` in (0, 1).
        sh: ``(..., N, K, 3)`` spherical-harmonic colour coefficients, ``K = (sh_degree + 1) ** 2``
            (DC first; colour = SH(view direction) + 0.5, clamped at 0).
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor


def gaussian_channels(sh_degree: int) -> tuple[int, int, int, int, int]:
    """Channels per primitive: centre offset 3, opacity 1, log-scale 3, quaternion 4 and SH
    ``3 (sh_degree + 1)^2`` (23 in all for degree 1)."""
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"sh_degree must lie in 0..3, got {sh_degree}")
    return 3, 1, 3, 4, 3 * (sh_degree + 1) ** 2


class GaussianHead(nn.Module):
    """Per-primitive features -> one Gaussian each (the official ``final`` MLP and activations).

    Linear(in, hidden), ReLU, Linear(hidden, 23); then the centre is the anchor plus
    ``tanh(offset) * offset_scale``, the opacity a sigmoid, the scale ``exp`` of the raw value clamped
    to ``[min_log_scale, max_log_scale]``, the rotation the normalised quaternion (w first) and the
    colour degree-``sh_degree`` SH coefficients (raw).

    Args:
        in_channels: feature width of the backbone.
        hidden_channels: width of the hidden layer (official: 128 for the 384-wide transformer, 32 for
            the 64-wide sparse U-Net).
        offset_scale: bound of the centre offset (official: 1.0 for objects, 0.2 for scenes).
        min_log_scale, max_log_scale: clamp of the log-scale before ``exp``. The official floor is -1,
            so no Gaussian is thinner than ``exp(-1) = 0.37`` units; lower it for finer primitives.
        sh_degree: degree of the colour's spherical harmonics (official: 1).
    """

    def __init__(self, in_channels: int, hidden_channels: int = 128, *, offset_scale: float = OFFSET_SCALE["object"],
                 min_log_scale: float = -1.0, max_log_scale: float = 20.0, sh_degree: int = 1) -> None:
        super().__init__()
        if not min_log_scale < max_log_scale:
            raise ValueError(f"GaussianHead: min_log_scale ({min_log_scale}) must be below max_log_scale "
                             f"({max_log_scale})")
        if not offset_scale > 0:
            raise ValueError(f"GaussianHead: offset_scale must be positive, got {offset_scale}")
        self.split_sizes = gaussian_channels(sh_degree)
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.ReLU(),
                                 nn.Linear(hidden_channels, sum(self.split_sizes)))
        self.offset_scale = float(offset_scale)
        self.min_log_scale, self.max_log_scale = float(min_log_scale), float(max_log_scale)
        self.sh_degree = sh_degree

    def forward(self, features: Tensor, anchors: Tensor) -> Gaussians:
        """``features`` ``(..., N, in_channels)`` and ``anchors`` ``(..., N, 3)`` (the primitives'
        positions) -> :class:`Gaussians` with leading dims ``(..., N)``."""
        if features.shape[:-1] != anchors.shape[:-1] or anchors.shape[-1] != 3:
            raise ValueError(f"GaussianHead: features (..., N, C) and anchors (..., N, 3) must share (..., N), got "
                             f"{tuple(features.shape)} and {tuple(anchors.shape)}")
        offset, opacity, log_scale, rotation, sh = self.mlp(features).split(self.split_sizes, dim=-1)
        return Gaussians(
            means=anchors + torch.tanh(offset) * self.offset_scale,
            quats=F.normalize(rotation, dim=-1, eps=1e-6),
            scales=torch.exp(log_scale.clamp(self.min_log_scale, self.max_log_scale)),
            opacities=torch.sigmoid(opacity).squeeze(-1),
            sh=sh.unflatten(-1, ((self.sh_degree + 1) ** 2, 3)),
        )

    def extra_repr(self) -> str:
        return (f"offset_scale={self.offset_scale}, log_scale in [{self.min_log_scale}, {self.max_log_scale}], "
                f"sh_degree={self.sh_degree}")


def nearest_point_pixels(points: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """The pixel each point wins in its view: project, then per pixel only the nearest point (smallest
    camera depth; the lower index among equal depths) keeps it (a z-buffer).

    Args:
        points: ``(B, N, 3)`` world coordinates.
        viewmats: ``(B, 4, 4)`` world -> camera; ``Ks``: ``(B, 3, 3)``.
        width, height: image size; a point lands in the pixel containing its projection (ppt's
            convention: pixel ``(u, v)`` covers ``[u, u + 1) x [v, v + 1)``).

    Returns:
        ``(B, N)`` int64: the flat pixel index ``v * width + u`` of each winning point, ``-1`` for
        points behind the camera, outside the image or hidden behind a nearer point of their pixel.
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (B, N, 3), got {tuple(points.shape)}")
    batch, count = points.shape[:2]
    if viewmats.shape != (batch, 4, 4) or Ks.shape != (batch, 3, 3):
        raise ValueError(f"viewmats and Ks must have shapes ({batch}, 4, 4) and ({batch}, 3, 3), got "
                         f"{tuple(viewmats.shape)} and {tuple(Ks.shape)}")
    with torch.no_grad():
        camera = points @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]
        projected = camera @ Ks.transpose(1, 2)
        depth = camera[..., 2]
        in_front = depth > 0
        safe_depth = torch.where(in_front, projected[..., 2], torch.ones_like(depth))
        u = torch.floor(projected[..., 0] / safe_depth)
        v = torch.floor(projected[..., 1] / safe_depth)
        valid = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        pixel = torch.where(valid, v * width + u, torch.zeros_like(u)).long()
        # One z-buffer for the whole batch: key = view * H * W + pixel.
        key = pixel + torch.arange(batch, device=points.device)[:, None] * (width * height)
        nearest = torch.full((batch * width * height,), torch.inf, dtype=depth.dtype, device=points.device)
        nearest.scatter_reduce_(0, key[valid], depth[valid], reduce="amin")
        candidate = valid & (depth == nearest[key])
        index = torch.arange(count, device=points.device).expand(batch, count)
        first = torch.full((batch * width * height,), count, dtype=torch.long, device=points.device)
        first.scatter_reduce_(0, key[candidate], index[candidate], reduce="amin")
        winner = candidate & (index == first[key])
        return torch.where(winner, pixel, torch.full_like(pixel, -1))


class PixelFeatureFusion(nn.Module):
    """Object-level fusion (official ``FeatureFusion``): each point takes the feature of the pixel it
    wins in the reference view (:func:`nearest_point_pixels`; zeros if it wins none), concatenated to
    its own feature, then Linear + ReLU.

    Args:
        point_channels, image_channels: widths of the point and pixel features.
        out_channels: output width (default: ``point_channels``).
    """

    def __init__(self, point_channels: int, image_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(point_channels + image_channels, out_channels or point_channels), nn.ReLU())

    def forward(self, features: Tensor, points: Tensor, feature_map: Tensor, viewmats: Tensor, Ks: Tensor) -> Tensor:
        """``features`` ``(B, N, Cp)``, ``points`` ``(B, N, 3)``, ``feature_map`` ``(B, Ci, H, W)`` at
        the reference image's resolution, its cameras ``viewmats`` ``(B, 4, 4)`` and ``Ks`` ``(B, 3, 3)``
        -> ``(B, N, out_channels)``."""
        height, width = feature_map.shape[-2:]
        pixels = nearest_point_pixels(points, viewmats, Ks, width, height)
        flat = feature_map.flatten(2).transpose(1, 2)  # (B, H*W, Ci)
        picked = flat.gather(1, pixels.clamp(min=0)[..., None].expand(-1, -1, flat.shape[-1]))
        picked = picked * (pixels >= 0)[..., None].to(picked.dtype)
        return self.mlp(torch.cat([features, picked], dim=-1))


def pixel_feature_maps(encoder: ImageEncoder, adapter: FeatureAdapter, images: Tensor) -> Tensor:
    """Images ``(N, H, W, 3)`` in [0, 1] -> per-pixel features ``(N, C, H, W)``: the frozen encoder,
    the adapter, and a bilinear upsampling where the encoder's map is coarser than the image."""
    feature_map = adapter(encoder(images.permute(0, 3, 1, 2)))
    if feature_map.shape[-2:] != images.shape[1:3]:
        feature_map = F.interpolate(feature_map, size=images.shape[1:3], mode="bilinear", align_corners=False)
    return feature_map


def weighted_l2_loss(renders: Tensor, images: Tensor, background: Sequence[float] | Tensor = (0.0, 0.0, 0.0),
                     foreground_weight: float = 4.0, background_weight: float = 1.0) -> Tensor:
    """Squared error with per-pixel weights (the official ``focal_l2_loss``).

    A pixel of ``images`` is background where all its channels equal ``background`` (``torch.isclose``
    with ``atol=1e-6``); weights are normalised to average 1 over the two classes:
    ``2 w_fg / (w_fg + w_bg)`` on object pixels and ``2 w_bg / (w_fg + w_bg)`` on background pixels
    (1.6 and 0.4 for 4 : 1); the result is the mean of the weighted error over all pixels and channels.

    Args:
        renders, images: ``(..., H, W, C)``, the prediction and the target.
    """
    if renders.shape != images.shape:
        raise ValueError(f"renders and images must have the same shape, got {tuple(renders.shape)} and "
                         f"{tuple(images.shape)}")
    if not (foreground_weight >= 0 and background_weight >= 0 and foreground_weight + background_weight > 0):
        raise ValueError(f"weights must be non-negative with a positive sum, got {foreground_weight}, {background_weight}")
    background = torch.as_tensor(background, dtype=images.dtype, device=images.device)
    is_background = torch.isclose(images, background.expand_as(images), atol=1e-6).all(dim=-1, keepdim=True)
    total = foreground_weight + background_weight
    weights = torch.where(is_background, 2.0 * background_weight / total, 2.0 * foreground_weight / total)
    return (weights * (renders - images) ** 2).mean()


class GaussianPretrainer(nn.Module, ABC):
    """What the object-level models share: a point backbone's per-primitive features, the 2D branch
    (frozen encoder, :class:`FeatureAdapter`, :class:`PixelFeatureFusion` in the reference view),
    :class:`GaussianHead` at the primitives' positions and the renderer. A subclass builds
    ``self.backbone``, calls :meth:`add_decoder` with its feature width and implements
    :meth:`point_features`; :meth:`finish_features` runs between the fusion and the head."""

    def add_decoder(self, channels: int, image_encoder: str | ImageEncoder | None, head_hidden: int,
                    offset_scale: float, min_log_scale: float, max_log_scale: float, sh_degree: int,
                    image_size: int | tuple[int, int], background: Sequence[float], near_plane: float) -> None:
        if isinstance(image_encoder, str):
            image_encoder = create_image_encoder(image_encoder)
        self.image_encoder = image_encoder
        if image_encoder is not None:
            self.adapter = FeatureAdapter(image_encoder.out_channels, channels)
            self.fusion = PixelFeatureFusion(channels, channels)
        self.head = GaussianHead(channels, head_hidden, offset_scale=offset_scale, min_log_scale=min_log_scale,
                                 max_log_scale=max_log_scale, sh_degree=sh_degree)
        width, height = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.renderer = GaussianRenderer(width, height, sh_degree=sh_degree, background=background,
                                         near_plane=near_plane)

    @abstractmethod
    def point_features(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """``points`` ``(B, P, 3)`` -> features ``(B, M, C)`` and positions ``(B, M, 3)`` of the primitives."""

    def finish_features(self, features: Tensor) -> Tensor:
        return features

    def predict(self, points: Tensor, reference_images: Tensor | None = None, reference_viewmats: Tensor | None = None,
                reference_Ks: Tensor | None = None) -> Gaussians:
        """``points`` ``(B, P, 3)`` -> :class:`Gaussians` ``(B, M, ...)``, one per primitive; with the 2D
        branch, the reference views' ``images`` ``(B, H, W, 3)``, ``viewmats`` ``(B, 4, 4)`` and ``Ks`` ``(B, 3, 3)``."""
        features, positions = self.point_features(points)
        if self.image_encoder is not None:
            if reference_images is None or reference_viewmats is None or reference_Ks is None:
                raise ValueError("UniPre3D with an image encoder needs the reference images, viewmats and Ks")
            if reference_images.dim() != 4 or reference_images.shape[0] != points.shape[0] or reference_images.shape[-1] != 3:
                raise ValueError(f"reference_images must have shape ({points.shape[0]}, H, W, 3), got "
                                 f"{tuple(reference_images.shape)}")
            feature_map = pixel_feature_maps(self.image_encoder, self.adapter, reference_images)
            features = self.fusion(features, positions, feature_map, reference_viewmats, reference_Ks)
        return self.head(self.finish_features(features), positions)

    def render(self, gaussians: Gaussians, viewmats: Tensor, Ks: Tensor) -> Tensor:
        """Every scene of ``gaussians`` (leading dims ``...``) into its cameras ``viewmats``
        ``(..., V, 4, 4)`` and ``Ks`` ``(..., V, 3, 3)``, in one rasterizer call -> ``(..., V, H, W, 3)``."""
        renders, _, _ = self.renderer(*gaussians, viewmats, Ks)
        return renders

    def forward(self, points: Tensor, images: Tensor, viewmats: Tensor, Ks: Tensor) -> Tensor:
        if images.dim() != 5 or images.shape[-1] != 3:
            raise ValueError(f"images must have shape (B, V, H, W, 3), got {tuple(images.shape)}")
        size = (images.shape[3], images.shape[2])
        if size != (self.renderer.width, self.renderer.height):
            raise ValueError(f"images are {size[0]}x{size[1]} but the model renders "
                             f"{self.renderer.width}x{self.renderer.height} (image_size)")
        gaussians = self.predict(points, images[:, 0], viewmats[:, 0], Ks[:, 0])
        return self.render(gaussians, viewmats, Ks)


class UniPre3D(GaussianPretrainer):
    """Object-level UniPre3D: the Point-MAE transformer predicts one Gaussian per group centre.

    The cloud's groups pass the transformer (:class:`ppt.models.PointMAE` without its head, so the
    pre-trained backbone loads into the classifier by key); the last block's group tokens are fused
    with the reference view's features (frozen encoder, :class:`FeatureAdapter`,
    :class:`PixelFeatureFusion`), normalised, and decoded by :class:`GaussianHead` at the centres; the
    Gaussians of all objects are rendered into all their views in one call.

    Args:
        num_groups, group_size, depth, dim, heads, drop_path: the transformer (:class:`ppt.models.PointMAE`).
        image_encoder: ``"conv"``, ``"sd-vae"``, ``"sd-vae:<folder>"`` (see
            :func:`ppt.models.image_encoders.create_image_encoder`), an :class:`ImageEncoder`, or ``None``
            to pre-train without the 2D branch.
        head_hidden, offset_scale, min_log_scale, max_log_scale, sh_degree: see :class:`GaussianHead`.
        image_size: ``(width, height)`` of the rendered views (or one int for square images).
        background: colour behind the Gaussians (the renders' background, black by default).
        near_plane: renderer depth culling (default: the official rasterizer's 0.2).

    ``forward(points (B, P, 3), images (B, V, H, W, 3), viewmats (B, V, 4, 4), Ks (B, V, 3, 3))``
    returns the renders ``(B, V, H, W, 3)`` of every view; view 0 is the reference view whose image
    feeds the 2D branch (a :class:`ppt.data.RenderBatch` unpacks into these arguments).
    """

    def __init__(self, *, num_groups: int = 128, group_size: int = 32, depth: int = 12, dim: int = 384,
                 heads: int = 6, drop_path: float = 0.1, image_encoder: str | ImageEncoder | None = "conv",
                 head_hidden: int = 128, offset_scale: float = OFFSET_SCALE["object"], min_log_scale: float = -1.0,
                 max_log_scale: float = 20.0, sh_degree: int = 1, image_size: int | tuple[int, int] = 128,
                 background: Sequence[float] = (0.0, 0.0, 0.0), near_plane: float = INRIA_NEAR_PLANE) -> None:
        super().__init__()
        self.backbone = PointMAE(num_classes=0, num_groups=num_groups, group_size=group_size, depth=depth, dim=dim,
                                 heads=heads, drop_path=drop_path)
        self.add_decoder(dim, image_encoder, head_hidden, offset_scale, min_log_scale, max_log_scale, sh_degree,
                         image_size, background, near_plane)

    def point_features(self, points: Tensor) -> tuple[Tensor, Tensor]:
        tokens, centers = self.backbone.forward_tokens(points)
        return tokens[:, 1:], centers  # the cls token is dropped after the final norm, which acts per token

    def finish_features(self, features: Tensor) -> Tensor:
        return self.backbone.norm(features)


UNIPRE3D_POINTMLP = dict(in_channels=3, points=1024, embed_dim=64, groups=1, res_expansion=1.0, activation="relu",
                         bias=False, use_xyz=False, normalize="anchor", dim_expansion=(2, 2, 2, 2),
                         pre_blocks=(2, 2, 2, 2), pos_blocks=(2, 2, 2, 2), k_neighbors=(24, 24, 24, 24),
                         reducers=(2, 2, 2, 2), de_dims=(512, 256, 128, 128), de_blocks=(2, 2, 2, 2))
"""UniPre3D's PointMLP backbone (its ``pointMLP()``: the classifier's encoder settings and a
decoder of 2 blocks per level), on xyz (UniPre3D's own encoder reads 4 input channels)."""


class UniPre3DPointMLP(GaussianPretrainer):
    """Object-level UniPre3D on PointMLP: one Gaussian per input point, from PointMLP's encoder and
    decoder (:class:`ppt.models.pointmlp.PointMLPSegmentationBackbone`, ``de_dims[-1]`` = 128
    features per point), fused with the reference view after the last decoder stage, then
    :class:`GaussianHead` (official: Linear(128, 64), ReLU, Linear(64, 23)).

    The encoder is :class:`ppt.models.PointMLP`'s (same settings and key names), so the exported
    backbone loads into the classifier (its decoder keys ignored) and into a
    :class:`ppt.models.PointMLPPartSeg` of the same settings (``normals=False``, its head fresh).

    Args:
        backbone: overrides of :data:`UNIPRE3D_POINTMLP` (``points``, ``k_neighbors``, ...).
        The others as :class:`UniPre3D`; ``head_hidden`` defaults to the official 64.
    """

    def __init__(self, *, backbone: dict | None = None, image_encoder: str | ImageEncoder | None = "conv",
                 head_hidden: int = 64, offset_scale: float = OFFSET_SCALE["object"], min_log_scale: float = -1.0,
                 max_log_scale: float = 20.0, sh_degree: int = 1, image_size: int | tuple[int, int] = 128,
                 background: Sequence[float] = (0.0, 0.0, 0.0), near_plane: float = INRIA_NEAR_PLANE) -> None:
        from ppt.models.pointmlp import PointMLPSegmentationBackbone

        super().__init__()
        self.backbone = PointMLPSegmentationBackbone(**{**UNIPRE3D_POINTMLP, **(backbone or {})})
        self.add_decoder(self.backbone.out_channels, image_encoder, head_hidden, offset_scale, min_log_scale,
                         max_log_scale, sh_degree, image_size, background, near_plane)

    def point_features(self, points: Tensor) -> tuple[Tensor, Tensor]:
        self.backbone.check_points(points, "points")
        features, _ = self.backbone.features(points, points.transpose(1, 2))
        return features.transpose(1, 2), points
