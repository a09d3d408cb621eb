"""PointMLP (Ma et al., ICLR 2022): the classifier, its elite variant and the part-segmentation
model, with the official architectures and state-dict names (github.com/ma-xu/pointMLP-pytorch at
1ab7f04: ``classification_ModelNet40/models/pointmlp.py`` and ``part_segmentation/model/pointMLP.py``)
on :mod:`ppt.ops` (farthest point sampling and exact kNN instead of ``pointnet2_ops``).

ppt takes clouds as ``(B, N, 3)``; the official code takes ``(B, 3, N)``. Inside, features stay
``(B, C, N)`` so every convolution has the official weight shape and an official checkpoint loads
by key (``load_weights(model, path, format="pointmlp")``).

Facts a reimplementation must keep (docs/models.md "PointMLP"):

- Anchor counts are fixed by ``points`` (``points // reducer`` per stage), not by the input size.
- Farthest point sampling starts at index 0 (as ``pointnet2_ops``); the anchor is its own nearest
  neighbour, so a group is the anchor and its ``k - 1`` nearest other points.
- ``normalize="anchor"`` subtracts the anchor's features (``"center"``: the group mean) and divides
  by ``std + 1e-5``, the *unbiased* standard deviation per cloud over all groups, neighbours and
  channels together; then ``affine_alpha * x + affine_beta``. Grouped features are
  ``[normalised (+ xyz), anchor features repeated k times]``.
- Residual block: ``act(net2(net1(x)) + x)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ppt.ops import farthest_point_sample, knn

__all__ = ["PointMLP", "pointmlp_elite", "POINTMLP_ELITE", "PointMLPPartSeg", "PointMLPEncoder",
           "PointMLPSegmentationBackbone",
           "ACTIVATIONS", "use_point_ops"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU, "rrelu": lambda: nn.RReLU(inplace=True),
    "selu": lambda: nn.SELU(inplace=True), "silu": lambda: nn.SiLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True), "leakyrelu": lambda: nn.LeakyReLU(inplace=True),
}
"""The official ``get_activation`` names (which fall back to ReLU for any other name; ppt refuses them)."""

NORMALIZATIONS = ("anchor", "center", None)

Sampler = Callable[[Tensor, int], Tensor]
Neighbours = Callable[[Tensor, Tensor, int], Tensor]


def _ppt_sampler(xyz: Tensor, count: int) -> Tensor:
    return farthest_point_sample(xyz, count)


def _ppt_neighbours(query: Tensor, points: Tensor, k: int) -> Tensor:
    return knn(query, points, k)[1]


def _activation(name: str) -> nn.Module:
    if name.lower() not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name.lower()]()


def gather_points(values: Tensor, index: Tensor) -> Tensor:
    """``values`` ``(B, N, C)`` at ``index`` ``(B, ...)`` -> ``(B, ..., C)`` (official ``index_points``)."""
    flat = index.reshape(index.shape[0], -1)
    picked = values.gather(1, flat[..., None].expand(-1, -1, values.shape[-1]))
    return picked.reshape(*index.shape, values.shape[-1])


class LocalGrouper(nn.Module):
    """Anchors by farthest point sampling, their ``k`` nearest neighbours, normalised as the module
    docstring says. ``forward(xyz (B, N, 3), features (B, N, C))`` -> anchors ``(B, S, 3)`` and grouped
    features ``(B, S, k, 2C (+3 with use_xyz))``."""

    def __init__(self, channels: int, groups: int, k_neighbors: int, use_xyz: bool = True,
                 normalize: str | None = "anchor") -> None:
        super().__init__()
        self.groups, self.k_neighbors, self.use_xyz = groups, k_neighbors, use_xyz
        self.normalize = normalize.lower() if isinstance(normalize, str) else normalize
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if self.normalize is not None:
            width = channels + (3 if use_xyz else 0)
            self.affine_alpha = nn.Parameter(torch.ones(1, 1, 1, width))
            self.affine_beta = nn.Parameter(torch.zeros(1, 1, 1, width))
        # The point operators (ppt.ops by default); use_point_ops swaps them, e.g. for a benchmark.
        self.sample: Sampler = _ppt_sampler
        self.neighbours: Neighbours = _ppt_neighbours

    def forward(self, xyz: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        batch = xyz.shape[0]
        anchor_index = self.sample(xyz, self.groups)
        anchor_xyz, anchor_features = gather_points(xyz, anchor_index), gather_points(features, anchor_index)
        neighbour_index = self.neighbours(anchor_xyz, xyz, self.k_neighbors)
        grouped = gather_points(features, neighbour_index)
        if self.use_xyz:
            grouped = torch.cat([grouped, gather_points(xyz, neighbour_index)], dim=-1)
        if self.normalize is not None:
            if self.normalize == "center":
                centre = grouped.mean(dim=2, keepdim=True)
            else:
                anchor = torch.cat([anchor_features, anchor_xyz], dim=-1) if self.use_xyz else anchor_features
                centre = anchor[:, :, None]
            offsets = grouped - centre
            std = offsets.reshape(batch, -1).std(dim=-1).view(batch, 1, 1, 1)
            grouped = self.affine_alpha * (offsets / (std + 1e-5)) + self.affine_beta
        repeated = anchor_features[:, :, None].expand(-1, -1, self.k_neighbors, -1)
        return anchor_xyz, torch.cat([grouped, repeated], dim=-1)

    def extra_repr(self) -> str:
        return (f"groups={self.groups}, k_neighbors={self.k_neighbors}, use_xyz={self.use_xyz}, "
                f"normalize={self.normalize!r}")


class ConvBNReLU1D(nn.Module):
    """``net``: Conv1d (kernel 1), BatchNorm1d, activation."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, activation: str = "relu") -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, bias=bias), nn.BatchNorm1d(out_channels),
                                 _activation(activation))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvBNReLURes1D(nn.Module):
    """``act(net2(net1(x)) + x)``; ``net1`` widens by ``res_expansion``; with ``groups > 1`` ``net2``
    is a grouped conv, BN, activation, then a dense conv and BN (as officially)."""

    def __init__(self, channels: int, groups: int = 1, res_expansion: float = 1.0, bias: bool = True,
                 activation: str = "relu") -> None:
        super().__init__()
        hidden = int(channels * res_expansion)
        self.act = _activation(activation)
        self.net1 = nn.Sequential(nn.Conv1d(channels, hidden, 1, groups=groups, bias=bias), nn.BatchNorm1d(hidden),
                                  _activation(activation))
        if groups > 1:
            self.net2 = nn.Sequential(nn.Conv1d(hidden, channels, 1, groups=groups, bias=bias),
                                      nn.BatchNorm1d(channels), _activation(activation),
                                      nn.Conv1d(channels, channels, 1, bias=bias), nn.BatchNorm1d(channels))
        else:
            self.net2 = nn.Sequential(nn.Conv1d(hidden, channels, 1, bias=bias), nn.BatchNorm1d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.net2(self.net1(x)) + x)


def _residual_blocks(channels: int, blocks: int, groups: int, res_expansion: float, bias: bool,
                     activation: str) -> nn.Sequential:
    return nn.Sequential(*(ConvBNReLURes1D(channels, groups, res_expansion, bias, activation) for _ in range(blocks)))


class PreExtraction(nn.Module):
    """Grouped features ``(B, S, k, D)`` -> ``transfer`` and residual blocks per neighbour, max over the
    group -> ``(B, C, S)``."""

    def __init__(self, channels: int, out_channels: int, blocks: int = 1, groups: int = 1,
                 res_expansion: float = 1.0, bias: bool = True, activation: str = "relu", use_xyz: bool = True) -> None:
        super().__init__()
        self.transfer = ConvBNReLU1D(2 * channels + (3 if use_xyz else 0), out_channels, bias, activation)
        self.operation = _residual_blocks(out_channels, blocks, groups, res_expansion, bias, activation)

    def forward(self, x: Tensor) -> Tensor:
        batch, anchors, k, width = x.shape
        x = self.operation(self.transfer(x.permute(0, 1, 3, 2).reshape(batch * anchors, width, k)))
        return x.amax(dim=-1).reshape(batch, anchors, -1).permute(0, 2, 1)


class PosExtraction(nn.Module):
    """Residual blocks over the anchors, ``(B, C, S)`` -> ``(B, C, S)``."""

    def __init__(self, channels: int, blocks: int = 1, groups: int = 1, res_expansion: float = 1.0, bias: bool = True,
                 activation: str = "relu") -> None:
        super().__init__()
        self.operation = _residual_blocks(channels, blocks, groups, res_expansion, bias, activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.operation(x)


def _stage_list(name: str, values: Sequence[int], stages: int) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if len(values) != stages or min(values) < 1:
        raise ValueError(f"{name} must hold {stages} positive ints (one per stage, as pre_blocks), got {list(values)}")
    return values


class PointMLPEncoder(nn.Module):
    """The stages PointMLP's models share: ``embedding`` (per-point ConvBNReLU1D of ``in_channels``),
    then per stage ``local_grouper_list[i]`` (``points // prod(reducers[:i+1])`` anchors),
    ``pre_blocks_list[i]`` and ``pos_blocks_list[i]``; stage ``i`` widens by ``dim_expansion[i]``.
    :meth:`encode` returns every level's points and features (the input level first).

    ``pos_blocks`` may hold zeros (no residual block after the grouping); the other lists are
    positive. Raises ``ValueError`` for inconsistent settings, naming the argument.
    """

    def __init__(self, in_channels: int = 3, points: int = 1024, embed_dim: int = 64, groups: int = 1,
                 res_expansion: float = 1.0, activation: str = "relu", bias: bool = False, use_xyz: bool = False,
                 normalize: str | None = "anchor", dim_expansion: Sequence[int] = (2, 2, 2, 2),
                 pre_blocks: Sequence[int] = (2, 2, 2, 2), pos_blocks: Sequence[int] = (2, 2, 2, 2),
                 k_neighbors: Sequence[int] = (24, 24, 24, 24), reducers: Sequence[int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        stages = len(pre_blocks)
        if stages < 1:
            raise ValueError("pre_blocks must name at least one stage")
        pre_blocks = _stage_list("pre_blocks", pre_blocks, stages)
        dim_expansion = _stage_list("dim_expansion", dim_expansion, stages)
        k_neighbors = _stage_list("k_neighbors", k_neighbors, stages)
        reducers = _stage_list("reducers", reducers, stages)
        pos_blocks = tuple(int(v) for v in pos_blocks)
        if len(pos_blocks) != stages or min(pos_blocks) < 0:
            raise ValueError(f"pos_blocks must hold {stages} non-negative ints, got {list(pos_blocks)}")
        _activation(activation)
        self.points = int(points)
        self.embedding = ConvBNReLU1D(in_channels, embed_dim, bias, activation)
        self.local_grouper_list = nn.ModuleList()
        self.pre_blocks_list = nn.ModuleList()
        self.pos_blocks_list = nn.ModuleList()
        self.channels, self.anchors = [embed_dim], [self.points]
        for stage in range(stages):
            out_channels = self.channels[-1] * dim_expansion[stage]
            anchors = self.anchors[-1] // reducers[stage]
            if anchors < 1 or k_neighbors[stage] > self.anchors[-1]:
                raise ValueError(f"stage {stage} of points={points} has {self.anchors[-1]} points to group into "
                                 f"{anchors} anchors of k_neighbors={k_neighbors[stage]}: need at least one anchor "
                                 "and at most as many neighbours as points (lower reducers or k_neighbors)")
            self.local_grouper_list.append(LocalGrouper(self.channels[-1], anchors, k_neighbors[stage], use_xyz,
                                                        normalize))
            self.pre_blocks_list.append(PreExtraction(self.channels[-1], out_channels, pre_blocks[stage], groups,
                                                      res_expansion, bias, activation, use_xyz))
            self.pos_blocks_list.append(PosExtraction(out_channels, pos_blocks[stage], groups, res_expansion, bias,
                                                      activation))
            self.channels.append(out_channels)
            self.anchors.append(anchors)

    def check_points(self, xyz: Tensor, name: str = "xyz") -> None:
        if xyz.dim() != 3 or xyz.shape[-1] != 3 or not xyz.is_floating_point():
            raise ValueError(f"{name} must be a floating point (B, N, 3) tensor, got {tuple(xyz.shape)} {xyz.dtype}")
        first = self.local_grouper_list[0]
        needed = max(first.groups, first.k_neighbors)
        if xyz.shape[1] < needed:
            raise ValueError(f"{name} has {xyz.shape[1]} points per cloud; this model (points={self.points}) "
                             f"samples {first.groups} anchors of {first.k_neighbors} neighbours from them, so needs "
                             f"at least {needed}")

    def encode(self, xyz: Tensor, features: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """``xyz`` ``(B, N, 3)`` and per-point input ``features`` ``(B, in_channels, N)`` -> the points
        ``(B, S_i, 3)`` and features ``(B, C_i, S_i)`` of the input level and every stage."""
        x = self.embedding(features)
        xyz_list, x_list = [xyz], [x]
        for grouper, pre, pos in zip(self.local_grouper_list, self.pre_blocks_list, self.pos_blocks_list):
            xyz, grouped = grouper(xyz, x.permute(0, 2, 1))
            x = pos(pre(grouped))
            xyz_list.append(xyz)
            x_list.append(x)
        return xyz_list, x_list


class PointMLP(PointMLPEncoder):
    """The PointMLP classifier (official ``Model``; defaults = the official ``pointMLP()``,
    13,238,504 parameters for 40 classes).

    ``forward(xyz (B, N, 3))`` -> logits ``(B, num_classes)``: the encoder on the coordinates, max over
    the last stage's anchors, then ``classifier`` (Linear-BN-act-Dropout(0.5) twice, Linear). With
    ``num_classes=0`` there is no classifier and ``forward`` returns the pooled features
    ``(B, channels[-1])``. ``N`` may exceed ``points``: the anchor counts stay ``points // reducer``.
    """

    def __init__(self, num_classes: int = 40, points: int = 1024, embed_dim: int = 64, groups: int = 1,
                 res_expansion: float = 1.0, activation: str = "relu", bias: bool = False, use_xyz: bool = False,
                 normalize: str | None = "anchor", dim_expansion: Sequence[int] = (2, 2, 2, 2),
                 pre_blocks: Sequence[int] = (2, 2, 2, 2), pos_blocks: Sequence[int] = (2, 2, 2, 2),
                 k_neighbors: Sequence[int] = (24, 24, 24, 24), reducers: Sequence[int] = (2, 2, 2, 2)) -> None:
        super().__init__(3, points, embed_dim, groups, res_expansion, activation, bias, use_xyz, normalize,
                         dim_expansion, pre_blocks, pos_blocks, k_neighbors, reducers)
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        if num_classes:
            self.classifier = nn.Sequential(
                nn.Linear(self.channels[-1], 512), nn.BatchNorm1d(512), _activation(activation), nn.Dropout(0.5),
                nn.Linear(512, 256), nn.BatchNorm1d(256), _activation(activation), nn.Dropout(0.5),
                nn.Linear(256, num_classes))

    def forward(self, xyz: Tensor) -> Tensor:
        self.check_points(xyz)
        _, x_list = self.encode(xyz, xyz.transpose(1, 2))
        pooled = x_list[-1].amax(dim=-1)
        return self.classifier(pooled) if self.num_classes else pooled


POINTMLP_ELITE = dict(embed_dim=32, groups=1, res_expansion=0.25, activation="relu", bias=False, use_xyz=False,
                      normalize="anchor", dim_expansion=(2, 2, 2, 1), pre_blocks=(1, 1, 2, 1), pos_blocks=(1, 1, 2, 1),
                      k_neighbors=(24, 24, 24, 24), reducers=(2, 2, 2, 2))
"""The official ``pointMLPElite`` settings (apart from ``points``, 1024)."""


def pointmlp_elite(num_classes: int = 40, **overrides) -> PointMLP:
    """PointMLP-elite (official ``pointMLPElite``: 32 channels, residual expansion 0.25, stages
    widening 2, 2, 2, 1 with 1, 1, 2, 1 blocks; 716,232 parameters for 40 classes)."""
    return PointMLP(num_classes, **{"points": 1024, **POINTMLP_ELITE, **overrides})


class PointNetFeaturePropagation(nn.Module):
    """Decoder stage: the coarse level's features interpolated to the fine points (3 nearest by
    squared distance, weights ``1 / (d² + 1e-8)`` normalised; a single coarse point is repeated),
    concatenated after the fine level's own features, then ``fuse`` (ConvBNReLU1D, always ReLU, as
    officially) and ``extraction`` (residual blocks)."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int = 1, groups: int = 1,
                 res_expansion: float = 1.0, bias: bool = True, activation: str = "relu") -> None:
        super().__init__()
        self.fuse = ConvBNReLU1D(in_channels, out_channels, bias, "relu")
        self.extraction = PosExtraction(out_channels, blocks, groups, res_expansion, bias, activation)

    def forward(self, fine_xyz: Tensor, coarse_xyz: Tensor, fine_features: Tensor | None,
                coarse_features: Tensor) -> Tensor:
        """``fine_xyz`` ``(B, N, 3)``, ``coarse_xyz`` ``(B, S, 3)``, ``fine_features`` ``(B, D1, N)`` or
        None, ``coarse_features`` ``(B, D2, S)`` -> ``(B, out_channels, N)``."""
        coarse = coarse_features.permute(0, 2, 1)
        if coarse_xyz.shape[1] == 1:
            interpolated = coarse.expand(-1, fine_xyz.shape[1], -1)
        else:
            dist2, index = knn(fine_xyz, coarse_xyz, 3)
            weight = 1.0 / (dist2 + 1e-8)
            weight = weight / weight.sum(dim=-1, keepdim=True)
            interpolated = (gather_points(coarse, index) * weight[..., None]).sum(dim=2)
        interpolated = interpolated.permute(0, 2, 1)
        x = interpolated if fine_features is None else torch.cat([fine_features, interpolated], dim=1)
        return self.extraction(self.fuse(x))


class PointMLPSegmentationBackbone(PointMLPEncoder):
    """PointMLP's encoder and decoder without a head: ``decode_list[i]`` propagates level ``i`` (deepest
    first) to level ``i + 1`` with ``de_dims[i]`` channels and ``de_blocks[i]`` residual blocks.
    :meth:`features` returns every input point's decoder features ``(B, de_dims[-1], N)`` and the
    encoder's levels. The backbone of :class:`PointMLPPartSeg` and of UniPre3D on PointMLP
    (:class:`ppt.models.UniPre3DPointMLP`)."""

    def __init__(self, in_channels: int = 6, points: int = 2048, embed_dim: int = 64, groups: int = 1,
                 res_expansion: float = 1.0, activation: str = "relu", bias: bool = True, use_xyz: bool = True,
                 normalize: str | None = "anchor", dim_expansion: Sequence[int] = (2, 2, 2, 2),
                 pre_blocks: Sequence[int] = (2, 2, 2, 2), pos_blocks: Sequence[int] = (2, 2, 2, 2),
                 k_neighbors: Sequence[int] = (32, 32, 32, 32), reducers: Sequence[int] = (4, 4, 4, 4),
                 de_dims: Sequence[int] = (512, 256, 128, 128), de_blocks: Sequence[int] = (4, 4, 4, 4)) -> None:
        super().__init__(in_channels, points, embed_dim, groups, res_expansion, activation, bias, use_xyz, normalize,
                         dim_expansion, pre_blocks, pos_blocks, k_neighbors, reducers)
        stages = len(self.local_grouper_list)
        de_dims = _stage_list("de_dims", de_dims, stages)
        de_blocks = tuple(int(v) for v in de_blocks)
        if len(de_blocks) != stages or min(de_blocks) < 0:
            raise ValueError(f"de_blocks must hold {stages} non-negative ints, got {list(de_blocks)}")
        encoder_dims = self.channels[::-1]
        decoder_dims = (encoder_dims[0], *de_dims)
        self.decode_list = nn.ModuleList(
            PointNetFeaturePropagation(decoder_dims[i] + encoder_dims[i + 1], decoder_dims[i + 1], de_blocks[i], groups,
                                       res_expansion, bias, activation) for i in range(stages))
        self.out_channels = de_dims[-1]

    def features(self, xyz: Tensor, features: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``xyz`` ``(B, N, 3)``, input ``features`` ``(B, in_channels, N)`` -> decoder features
        ``(B, out_channels, N)`` and the encoder's level features, deepest first."""
        xyz_list, x_list = self.encode(xyz, features)
        xyz_list, x_list = xyz_list[::-1], x_list[::-1]
        x = x_list[0]
        for i, decode in enumerate(self.decode_list):
            x = decode(xyz_list[i + 1], xyz_list[i], x_list[i + 1], x)
        return x, x_list


class PointMLPPartSeg(PointMLPSegmentationBackbone):
    """PointMLP part segmentation (official ``PointMLP`` of ``part_segmentation``; defaults = the
    official ``pointMLP(50)``, 16,755,594 parameters).

    ``forward(xyz (B, N, 3), normals (B, N, 3), cls_label (B,) int64 in [0, categories))`` ->
    per-point log-probabilities ``(B, N, num_classes)``. The embedding reads ``[xyz, normals]``
    (``normals=False``: xyz only, and ``normals`` may be None); the category's one-hot passes
    ``cls_map`` (two ConvBNReLU1D); the global context is every encoder level (deepest first)
    through ``gmp_map_list``, max-pooled, concatenated and through ``gmp_map_end``; the decoder's
    features, the global context and the category features (``[de_dims[-1], gmp_dim, cls_dim]``)
    go through ``classifier`` (Conv-BN-Dropout(0.5)-Conv, no activation, as officially), then log_softmax.
    """

    def __init__(self, num_classes: int = 50, points: int = 2048, embed_dim: int = 64, groups: int = 1,
                 res_expansion: float = 1.0, activation: str = "relu", bias: bool = True, use_xyz: bool = True,
                 normalize: str | None = "anchor", dim_expansion: Sequence[int] = (2, 2, 2, 2),
                 pre_blocks: Sequence[int] = (2, 2, 2, 2), pos_blocks: Sequence[int] = (2, 2, 2, 2),
                 k_neighbors: Sequence[int] = (32, 32, 32, 32), reducers: Sequence[int] = (4, 4, 4, 4),
                 de_dims: Sequence[int] = (512, 256, 128, 128), de_blocks: Sequence[int] = (4, 4, 4, 4),
                 gmp_dim: int = 64, cls_dim: int = 64, categories: int = 16, normals: bool = True) -> None:
        super().__init__(6 if normals else 3, points, embed_dim, groups, res_expansion, activation, bias, use_xyz,
                         normalize, dim_expansion, pre_blocks, pos_blocks, k_neighbors, reducers, de_dims, de_blocks)
        if num_classes < 1 or categories < 1:
            raise ValueError(f"num_classes and categories must be >= 1, got {num_classes} and {categories}")
        self.num_classes, self.categories, self.normals = num_classes, categories, normals
        self.cls_map = nn.Sequential(ConvBNReLU1D(categories, cls_dim, bias, activation),
                                     ConvBNReLU1D(cls_dim, cls_dim, bias, activation))
        self.gmp_map_list = nn.ModuleList(ConvBNReLU1D(width, gmp_dim, bias, activation)
                                          for width in self.channels[::-1])
        self.gmp_map_end = ConvBNReLU1D(gmp_dim * len(self.channels), gmp_dim, bias, activation)
        self.classifier = nn.Sequential(nn.Conv1d(gmp_dim + cls_dim + self.out_channels, 128, 1, bias=bias),
                                        nn.BatchNorm1d(128), nn.Dropout(0.5), nn.Conv1d(128, num_classes, 1, bias=bias))

    def forward(self, xyz: Tensor, normals: Tensor | None, cls_label: Tensor) -> Tensor:
        self.check_points(xyz)
        if self.normals:
            if normals is None or normals.shape != xyz.shape:
                raise ValueError(f"normals must have the shape of xyz {tuple(xyz.shape)}, got "
                                 f"{None if normals is None else tuple(normals.shape)}")
            features = torch.cat([xyz, normals.to(xyz.dtype)], dim=-1).transpose(1, 2)
        else:
            features = xyz.transpose(1, 2)
        if cls_label.shape != (xyz.shape[0],) or cls_label.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"cls_label must be an integer tensor of shape ({xyz.shape[0]},), got "
                             f"{tuple(cls_label.shape)} {cls_label.dtype}")
        if cls_label.numel() and (int(cls_label.min()) < 0 or int(cls_label.max()) >= self.categories):
            raise ValueError(f"cls_label must lie in [0, {self.categories}), got values in "
                             f"[{int(cls_label.min())}, {int(cls_label.max())}]")
        x, x_list = self.features(xyz, features)
        pooled = [gmp(level).amax(dim=-1, keepdim=True) for gmp, level in zip(self.gmp_map_list, x_list)]
        global_context = self.gmp_map_end(torch.cat(pooled, dim=1))
        one_hot = nn.functional.one_hot(cls_label.long(), self.categories).to(x.dtype)[:, :, None]
        category = self.cls_map(one_hot)
        count = x.shape[-1]
        x = torch.cat([x, global_context.expand(-1, -1, count), category.expand(-1, -1, count)], dim=1)
        return torch.log_softmax(self.classifier(x), dim=1).permute(0, 2, 1)


def use_point_ops(model: nn.Module, sample: Sampler | None = None, neighbours: Neighbours | None = None) -> nn.Module:
    """Swap the farthest point sampling ``sample(xyz (B, N, 3), S) -> (B, S)`` and the kNN
    ``neighbours(query (B, S, 3), points (B, N, 3), k) -> (B, S, k)`` of every grouping in ``model``
    (``None``: back to :mod:`ppt.ops`). For comparisons with other implementations (``ppt bench``)."""
    for module in model.modules():
        if isinstance(module, LocalGrouper):
            module.sample = sample or _ppt_sampler
            module.neighbours = neighbours or _ppt_neighbours
    return model
