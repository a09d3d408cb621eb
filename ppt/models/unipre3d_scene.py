"""Scene-level UniPre3D: a sparse U-Net predicts one Gaussian per voxel; the reference frames' depth
brings 2D features into the network as extra voxels (the official ``PointFusion``).

* :func:`backproject_depth`: depth maps -> world points (ppt's pixel convention).
* :class:`DepthPointFusion`: back-project the reference depths (> ``min_depth``, inside the cloud's
  bounding box), voxelize them at the cloud's grid with :func:`ppt.ops.voxelize`, give each voxel the
  mean pixel feature of its points, append the new voxels to the stem's output (voxels the cloud
  already occupies take the feature as a sum), then SubM conv + norm + ReLU.
* :class:`UniPre3DScene`: :class:`ppt.models.SpUNet` or :class:`ppt.models.PointTransformerV3`
  (``num_classes=0``, UniPre3D's ``sparseunet`` and ``ptv3`` backbones) with the fusion after its
  stem (SpUNet's ``conv_input``, PTv3's ``embedding``: where the official code fuses on both),
  :class:`ppt.models.unipre3d.GaussianHead` (offset scale 0.2) on the decoder's output at every voxel
  (cloud and fused), and one :class:`ppt.nn.GaussianRenderer` call for every scene x target view of
  the batch.

The input is a :class:`ppt.data.FrameBatch` (:class:`ppt.data.ScanNetFrames`). docs/unipre3d.md,
"Scene level", lists the differences from the official code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ppt.models.image_encoders import FeatureAdapter, ImageEncoder, create_image_encoder
from ppt.models.point_transformer_v3 import PointTransformerV3
from ppt.models.spunet import ConvNormReLU, SpUNet
from ppt.models.unipre3d import (
    INRIA_NEAR_PLANE, OFFSET_SCALE, GaussianHead, Gaussians, pixel_feature_maps, weighted_l2_loss,
)
from ppt.nn import GaussianRenderer, SubMConv3d
from ppt.ops import voxelize
from ppt.sparse import SparseTensor

__all__ = ["backproject_depth", "DepthPointFusion", "FusedVoxels", "UniPre3DScene", "pad_scenes", "SCENE_BACKBONES",
           "UNIPRE3D_PTV3"]

SCENE_BACKBONES = ("spunet", "ptv3")
"""The backbones of :class:`UniPre3DScene` (UniPre3D's ``sparseunet`` and ``ptv3``)."""

UNIPRE3D_PTV3 = {"order": ("z", "z-trans"), "enc_patch_size": (48,) * 5, "dec_patch_size": (48,) * 4}
"""Where UniPre3D's PTv3 (``pointcept/models/point_transformer_v3``, built with its defaults by
``configs/ptv3_pretraining.yaml``) differs from Pointcept's ScanNet PT-v3m1: two orders and patches
of 48 points. Neither has weights, so its backbone loads into the ``ptv3-*`` recipes as it is."""

MIN_DEPTH = 0.05
"""Depths at or below this (metres) are no measurement (the official ``LinkCreator``'s 5e-2)."""


def backproject_depth(depths: Tensor, viewmats: Tensor, Ks: Tensor) -> Tensor:
    """World points of every pixel: ``depths`` ``(..., H, W)`` (camera z), their cameras'
    ``viewmats`` ``(..., 4, 4)`` (world -> camera, OpenCV axes) and ``Ks`` ``(..., 3, 3)`` ->
    ``(..., H, W, 3)``. Pixel ``(u, v)`` is its centre ``(u + 0.5, v + 0.5)`` (ppt's convention)."""
    if depths.dim() < 2 or viewmats.shape[-2:] != (4, 4) or Ks.shape[-2:] != (3, 3) \
            or viewmats.shape[:-2] != depths.shape[:-2] or Ks.shape[:-2] != depths.shape[:-2]:
        raise ValueError(f"backproject_depth: depths (..., H, W), viewmats (..., 4, 4) and Ks (..., 3, 3) must share "
                         f"(...), got {tuple(depths.shape)}, {tuple(viewmats.shape)} and {tuple(Ks.shape)}")
    height, width = depths.shape[-2:]
    v, u = torch.meshgrid(torch.arange(height, dtype=depths.dtype, device=depths.device) + 0.5,
                          torch.arange(width, dtype=depths.dtype, device=depths.device) + 0.5, indexing="ij")
    fx, fy = Ks[..., 0, 0, None, None], Ks[..., 1, 1, None, None]
    cx, cy = Ks[..., 0, 2, None, None], Ks[..., 1, 2, None, None]
    camera = torch.stack([(u - cx) / fx * depths, (v - cy) / fy * depths, depths], dim=-1)
    camera_to_world = torch.linalg.inv(viewmats)
    rotation, translation = camera_to_world[..., None, None, :3, :3], camera_to_world[..., None, None, :3, 3]
    return (rotation @ camera.unsqueeze(-1)).squeeze(-1) + translation


class FusedVoxels(NamedTuple):
    """The voxels :class:`DepthPointFusion` appended: ``anchors`` ``(A, 3)`` (mean position of their
    back-projected points) and ``batch`` ``(A,)`` int64 scene ids, in the order of the rows it added."""

    anchors: Tensor
    batch: Tensor


def _cloud_grid(coord: Tensor, x: SparseTensor, voxel_size: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per scene: the bounding box of the cloud (``low``, ``high``, each ``(B, 3)``) and the grid
    shift (``(B, 3)`` int64: a point's voxel is ``floor(p / voxel_size) - shift``, the grid of
    :func:`ppt.ops.voxelize` and Pointcept's ``GridSample``), read from the rows of ``x`` (the
    cloud's sites) and their coordinates."""
    scene = x.indices[:, 0].long()[:, None].expand(-1, 3)
    size = (x.batch_size, 3)
    low = coord.new_full(size, torch.inf).scatter_reduce(0, scene, coord, "amin")
    high = coord.new_full(size, -torch.inf).scatter_reduce(0, scene, coord, "amax")
    cell = torch.floor(coord.double() / voxel_size).long() - x.indices[:, 1:].long()
    shift = cell.new_full(size, torch.iinfo(torch.int64).max).scatter_reduce(0, scene, cell, "amin")
    return low, high, shift


class DepthPointFusion(nn.Module):
    """Point fusion of the reference frames (the official scene-level ``PointFusion``; module
    docstring). The pixel features must have the stem's width.

    Args:
        channels: feature width (the SpUNet stem's ``base_channels``).
        voxel_size: the cloud's grid (0.02 m).
        min_depth: depths at or below it are no measurement.
    """

    def __init__(self, channels: int, voxel_size: float = 0.02, min_depth: float = MIN_DEPTH) -> None:
        super().__init__()
        if not voxel_size > 0:
            raise ValueError(f"DepthPointFusion: voxel_size must be positive, got {voxel_size}")
        self.channels, self.voxel_size, self.min_depth = channels, float(voxel_size), float(min_depth)
        # The official fusion_mlps: SubMConv3d (with bias) + BatchNorm1d + ReLU.
        self.mix = ConvNormReLU(SubMConv3d(channels, channels, kernel_size=3, padding=1, bias=True),
                                nn.BatchNorm1d(channels))
        nn.init.trunc_normal_(self.mix.conv.weight, std=0.02)
        nn.init.zeros_(self.mix.conv.bias)

    def voxels(self, x: SparseTensor, coord: Tensor, pixel_features: Tensor, depths: Tensor, viewmats: Tensor,
               Ks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The fusion voxels before merging: sites ``(M, 4)`` int32 ``[b, x, y, z]`` on the cloud's
        grid, mean pixel features ``(M, C)`` and mean positions ``(M, 3)``."""
        batch_size, views, height, width = depths.shape
        if pixel_features.shape != (batch_size, views, self.channels, height, width):
            raise ValueError(f"DepthPointFusion: pixel_features must have shape "
                             f"{(batch_size, views, self.channels, height, width)}, got {tuple(pixel_features.shape)}")
        if batch_size != x.batch_size:
            raise ValueError(f"DepthPointFusion: {batch_size} scenes of frames for a tensor of {x.batch_size} scenes")
        low, high, shift = _cloud_grid(coord, x, self.voxel_size)
        points = backproject_depth(depths, viewmats, Ks)  # (B, V, H, W, 3)
        scene = torch.arange(batch_size, device=depths.device)[:, None, None, None].expand(depths.shape)
        keep = (depths > self.min_depth) & (points >= low[scene]).all(-1) & (points <= high[scene]).all(-1)
        points, scene = points[keep], scene[keep]
        features = pixel_features.permute(0, 1, 3, 4, 2)[keep]
        # One point per scene at the centre of the cloud's lowest voxel pins voxelize's per-scene
        # shift to the cloud's (every kept point lies inside the box, so none is below it).
        pins = ((shift.double() + 0.5) * self.voxel_size).to(points.dtype)
        pin_scene = torch.arange(batch_size, device=depths.device)
        sites, inverse, _ = voxelize(torch.cat([points, pins]), self.voxel_size, torch.cat([scene, pin_scene]))
        inverse = inverse[:points.shape[0]]
        counts = torch.bincount(inverse, minlength=sites.shape[0])
        occupied = counts > 0
        total = features.new_zeros(sites.shape[0], features.shape[1]).index_add(0, inverse, features)
        position = points.new_zeros(sites.shape[0], 3).index_add(0, inverse, points)
        denominator = counts.clamp(min=1)[:, None].to(features.dtype)
        return sites[occupied], (total / denominator)[occupied], (position / denominator)[occupied]

    def forward(self, x: SparseTensor, coord: Tensor, pixel_features: Tensor, depths: Tensor, viewmats: Tensor,
                Ks: Tensor) -> tuple[SparseTensor, FusedVoxels]:
        """Fuse into ``x`` (the stem's output, one row per cloud point at ``coord`` ``(N, 3)``) the
        reference frames: ``pixel_features`` ``(B, V, C, H, W)``, ``depths`` ``(B, V, H, W)`` metres,
        the depth cameras ``viewmats`` ``(B, V, 4, 4)`` and ``Ks`` ``(B, V, 3, 3)``. Returns the mixed
        tensor (``x``'s rows first, then one row per new voxel) and the new voxels."""
        if coord.shape != (x.features.shape[0], 3):
            raise ValueError(f"DepthPointFusion: coord must be (N, 3) with N = {x.features.shape[0]} rows of x, got "
                             f"{tuple(coord.shape)}")
        sites, features, anchors = self.voxels(x, coord, pixel_features, depths, viewmats, Ks)
        shape = torch.tensor(x.spatial_shape, dtype=torch.int64, device=sites.device)

        def keys(indices: Tensor) -> Tensor:
            idx = indices.long()
            return ((idx[:, 0] * shape[0] + idx[:, 1]) * shape[1] + idx[:, 2]) * shape[2] + idx[:, 3]

        existing, order = torch.sort(keys(x.indices))
        fused = keys(sites)
        position = torch.searchsorted(existing, fused).clamp(max=max(existing.shape[0] - 1, 0))
        taken = existing[position] == fused
        # A voxel the cloud already occupies adds its feature there (sites must stay unique).
        merged = x.features.index_add(0, order[position[taken]], features[taken].to(x.features.dtype))
        new = ~taken
        combined = SparseTensor(torch.cat([merged, features[new].to(x.features.dtype)]),
                                torch.cat([x.indices, sites[new]]), x.spatial_shape, x.batch_size)
        return self.mix(combined), FusedVoxels(anchors[new], sites[new, 0].long())

    def extra_repr(self) -> str:
        return f"channels={self.channels}, voxel_size={self.voxel_size}, min_depth={self.min_depth}"


def pad_scenes(gaussians: Gaussians, batch: Tensor, batch_size: int) -> Gaussians:
    """Flat Gaussians ``(M, ...)`` of ``batch_size`` scenes (scene ids ``batch`` ``(M,)``) -> padded
    ``(B, N_max, ...)``; the padding Gaussians are fully transparent (opacity 0, unit quaternion,
    small scale, at the origin), so they change no pixel."""
    counts = torch.bincount(batch, minlength=batch_size)
    order = torch.argsort(batch, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(batch)
    slot[order] = torch.arange(batch.shape[0], device=batch.device) - starts[batch[order]]
    width = int(counts.max()) if batch.numel() else 0

    def pad(value: Tensor, fill: Tensor) -> Tensor:
        out = fill.to(value.dtype).expand(batch_size, width, *value.shape[1:]).clone()
        out[batch, slot] = value
        return out

    means, quats, scales, opacities, sh = gaussians
    identity = quats.new_tensor([1.0, 0.0, 0.0, 0.0])
    return Gaussians(pad(means, means.new_zeros(())), pad(quats, identity), pad(scales, scales.new_tensor(1e-3)),
                     pad(opacities, opacities.new_zeros(())), pad(sh, sh.new_zeros(())))


class UniPre3DScene(nn.Module):
    """Scene-level UniPre3D (module docstring).

    Args:
        in_channels: input features per point (6: colour + normal, the official).
        backbone: ``"spunet"`` (:class:`ppt.models.SpUNet`) or ``"ptv3"``
            (:class:`ppt.models.PointTransformerV3`, with :data:`UNIPRE3D_PTV3` over Pointcept's
            defaults). The fused pixel features get the stem's width (official 32 for both).
        base_channels, channels, layers: the SpUNet's (``backbone="spunet"``).
        backbone_kwargs: further :class:`PointTransformerV3` arguments (``backbone="ptv3"`` only).
        image_encoder: ``"conv"``, ``"sd-vae"``, ``"sd-vae:<folder>"``, an :class:`ImageEncoder`, or
            ``None`` to pre-train without the 2D branch (no point fusion).
        head_hidden, offset_scale, min_log_scale, max_log_scale, sh_degree: see :class:`GaussianHead`
            (official scene values: 32, 0.2, -1, 20, 1).
        image_size: ``(width, height)`` of the frames (official 160 x 120).
        background: colour behind the Gaussians (official ``white_background: true``).
        near_plane: renderer depth culling (the official rasterizer's 0.2).
        voxel_size, min_depth: see :class:`DepthPointFusion`.
        foreground_weight, background_weight: of :func:`weighted_l2_loss` in :meth:`loss` (the
            official scene recipe trains a plain L2: 1 and 1).

    ``forward(batch)`` takes a :class:`ppt.data.FrameBatch` and returns the renders
    ``(B, V, H, W, 3)`` of every target view.
    """

    def __init__(self, *, in_channels: int = 6, backbone: str = "spunet", base_channels: int = 32,
                 channels: Sequence[int] = (32, 64, 128, 256, 256, 128, 96, 96),
                 layers: Sequence[int] = (2, 3, 4, 6, 2, 2, 2, 2), backbone_kwargs: Mapping | None = None,
                 image_encoder: str | ImageEncoder | None = "conv",
                 head_hidden: int = 32, offset_scale: float = OFFSET_SCALE["scene"], min_log_scale: float = -1.0,
                 max_log_scale: float = 20.0, sh_degree: int = 1, image_size: tuple[int, int] = (160, 120),
                 background: Sequence[float] = (1.0, 1.0, 1.0), near_plane: float = INRIA_NEAR_PLANE,
                 voxel_size: float = 0.02, min_depth: float = MIN_DEPTH, foreground_weight: float = 1.0,
                 background_weight: float = 1.0) -> None:
        super().__init__()
        if backbone not in SCENE_BACKBONES:
            raise ValueError(f"UniPre3DScene: backbone must be one of {SCENE_BACKBONES}, got {backbone!r}")
        if backbone_kwargs and backbone != "ptv3":
            raise ValueError("UniPre3DScene: backbone_kwargs are PointTransformerV3 arguments (backbone='ptv3'); the "
                             "SpUNet takes base_channels, channels and layers")
        if backbone == "ptv3":
            arguments = {**UNIPRE3D_PTV3, **(backbone_kwargs or {})}
            if arguments.get("enc_mode"):
                raise ValueError("UniPre3DScene: the Gaussians come from the PTv3 decoder; enc_mode must be False")
            self.backbone = PointTransformerV3(in_channels, num_classes=0, **arguments)
            stem_channels = self.backbone.embedding.stem.conv.out_channels
        else:
            self.backbone = SpUNet(in_channels, num_classes=0, base_channels=base_channels, channels=channels,
                                   layers=layers)
            stem_channels = base_channels
        if isinstance(image_encoder, str):
            image_encoder = create_image_encoder(image_encoder)
        self.image_encoder = image_encoder
        if image_encoder is not None:
            self.adapter = FeatureAdapter(image_encoder.out_channels, stem_channels)
            self.fusion = DepthPointFusion(stem_channels, voxel_size, min_depth)
        self.head = GaussianHead(self.backbone.out_channels, head_hidden, offset_scale=offset_scale,
                                 min_log_scale=min_log_scale, max_log_scale=max_log_scale, sh_degree=sh_degree)
        width, height = image_size
        self.renderer = GaussianRenderer(width, height, sh_degree=sh_degree, background=background,
                                         near_plane=near_plane)
        self.loss_weights = (float(foreground_weight), float(background_weight))

    def predict(self, batch) -> tuple[Gaussians, Tensor]:
        """Flat Gaussians ``(M, ...)`` of every voxel of the batch (the cloud's, then the fused ones)
        and their scene ids ``(M,)``."""
        points = batch.points
        fused: list[FusedVoxels] = []
        after_stem = None
        if self.image_encoder is not None:
            refs = batch.reference_images
            if refs.dim() != 5 or refs.shape[0] != points.batch_size or refs.shape[-1] != 3:
                raise ValueError(f"UniPre3DScene: reference_images must have shape ({points.batch_size}, V, H, W, 3), "
                                 f"got {tuple(refs.shape)}")
            if batch.reference_depths.shape != refs.shape[:-1]:
                raise ValueError(f"UniPre3DScene: reference_depths must have shape {tuple(refs.shape[:-1])}, got "
                                 f"{tuple(batch.reference_depths.shape)}")
            pixel_features = pixel_feature_maps(self.image_encoder, self.adapter, refs.flatten(0, 1))
            pixel_features = pixel_features.unflatten(0, refs.shape[:2])

            def after_stem(x: SparseTensor) -> SparseTensor:
                mixed, voxels = self.fusion(x, points.coord, pixel_features, batch.reference_depths,
                                            batch.reference_viewmats, batch.depth_Ks)
                fused.append(voxels)
                return mixed

        features = self.backbone(points.sparse_tensor(), after_stem=after_stem)
        anchors, scene = points.coord, points.batch
        if fused:
            anchors, scene = torch.cat([anchors, fused[0].anchors]), torch.cat([scene, fused[0].batch])
        return self.head(features, anchors.to(features.dtype)), scene

    def render(self, gaussians: Gaussians, scene: Tensor, viewmats: Tensor, Ks: Tensor) -> Tensor:
        """Flat Gaussians of ``B`` scenes into their cameras ``viewmats`` ``(B, V, 4, 4)`` and ``Ks``
        ``(B, V, 3, 3)``, in one rasterizer call -> ``(B, V, H, W, 3)``."""
        renders, _, _ = self.renderer(*pad_scenes(gaussians, scene, viewmats.shape[0]), viewmats, Ks)
        return renders

    def forward(self, batch) -> Tensor:
        images = batch.images
        if images.dim() != 5 or images.shape[-1] != 3 or images.shape[0] != batch.points.batch_size:
            raise ValueError(f"UniPre3DScene: images must have shape ({batch.points.batch_size}, V, H, W, 3), got "
                             f"{tuple(images.shape)}")
        if (images.shape[3], images.shape[2]) != (self.renderer.width, self.renderer.height):
            raise ValueError(f"UniPre3DScene: images are {images.shape[3]}x{images.shape[2]} but the model renders "
                             f"{self.renderer.width}x{self.renderer.height} (image_size)")
        gaussians, scene = self.predict(batch)
        return self.render(gaussians, scene, batch.viewmats, batch.Ks)

    def loss(self, renders: Tensor, images: Tensor) -> Tensor:
        """:func:`weighted_l2_loss` with the renderer's background and the model's weights."""
        return weighted_l2_loss(renders, images, self.renderer.background, *self.loss_weights)
