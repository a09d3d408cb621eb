"""Point Transformer V3 (Wu et al., CVPR 2024) on ppt's kernels: Pointcept's ``PT-v3m1``.

The points are serialized along space-filling curves (:func:`ppt.ops.serialize`: z-order, Hilbert
and their x/y-swapped ``-trans`` variants); every block runs a conditional positional encoding (a
3^3 :class:`ppt.nn.SubMConv3d`, Linear, LayerNorm) and multi-head attention inside patches of
``patch_size`` consecutive points of one order (block ``i`` of a stage uses order
``i % len(order)``), then an MLP. Stages are joined by grid pooling (the points of one
``stride^3`` cell, found from the serialization codes, reduced by a max with
:func:`ppt.ops.sparse_max_pool`) and the decoder unpools by broadcasting a cell's features back to
its points, adding the skip branch.

Constructor names and defaults, module names and so checkpoint keys, and the numerics are
Pointcept's (commit d74c646): ``load_weights(model, path, format="pointcept")`` loads a
``DefaultSegmentorV2`` + ``PT-v3m1`` checkpoint (``backbone.*``, ``seg_head.*``). Where ppt
differs, and why (docs/models.md lists these too):

- attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (on CPU and CUDA);
  ``flash_attn`` is used, as by Pointcept, only when it is installed, ``enable_flash=True`` and
  the features are on CUDA. The patch layout of each mode is Pointcept's: with
  ``enable_flash=True`` patches have ``patch_size`` points and a scene of ``n <= patch_size``
  points is one shorter patch; with ``enable_flash=False`` the patch size is
  ``min(patch_size, smallest scene at that level)``. A scene whose size is not a multiple of the
  patch size is padded by repeating, at the end, the points one patch before.
- ``shuffle_orders=True`` shuffles the orders at the input and at every pooling in training only;
  Pointcept's pooling layers shuffle always (also in eval, also with ``shuffle_orders=False``), so
  ppt's eval is deterministic and ``shuffle_orders=False`` never shuffles.
- ``pdnorm_decouple=False`` shares one norm among the conditions (Pointcept's code stores the
  norm's constructor instead of a norm there and cannot run).
- ties of equal serialization codes (duplicate grid points, which voxelized inputs never have)
  keep the input order (a stable sort); Pointcept's ``argsort`` leaves it unspecified.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppt.models.conditions import Condition, condition_index
from ppt.models.point_transformer import DropPath, Mlp
from ppt.nn import SubMConv3d
from ppt.ops import sparse_max_pool
from ppt.ops.serialization import ORDERS, Serialization, serialize
from ppt.sparse import SparseTensor

try:
    import flash_attn
except ImportError:
    flash_attn = None

__all__ = ["PointTransformerV3", "ConditionNorm"]

_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01



class ConditionNorm(nn.Module):
    """Pointcept's PTv3 ``PDNorm``: one norm per condition (``norm.{i}``; one shared ``norm`` with
    ``decouple=False``), optionally modulated by the condition's context
    (``modulation`` = SiLU, Linear(context, 2C): ``x (1 + scale) + shift``).

    ``forward(x, condition, context)``: ``condition`` is an index into ``conditions`` for the whole
    batch or an ``(N,)`` int64 index per row (each condition's rows are normalized by its norm,
    batch statistics included); ``context`` is ``(len(conditions), context_channels)``, or
    ``(1, context_channels)`` for a single condition (Pointcept's PPT passes that one row).
    """

    def __init__(self, num_features: int, make_norm: Callable[[int], nn.Module], conditions: Sequence[str],
                 context_channels: int = 256, decouple: bool = True, adaptive: bool = False) -> None:
        super().__init__()
        if isinstance(conditions, str) or len(conditions) == 0:
            raise ValueError(f"ConditionNorm: conditions must be a non-empty sequence of names, got {conditions!r}")
        self.conditions = tuple(conditions)
        self.decouple, self.adaptive = decouple, adaptive
        self.norm = (nn.ModuleList(make_norm(num_features) for _ in self.conditions) if decouple
                     else make_norm(num_features))
        if adaptive:
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(context_channels, 2 * num_features))

    def forward(self, x: Tensor, condition: int | Tensor | None, context: Tensor | None) -> Tensor:
        if condition is None:
            raise ValueError(f"ConditionNorm: a condition (one of {self.conditions}) is needed, got None")
        if not self.decouple:
            y = self.norm(x)
        elif isinstance(condition, int):
            y = self.norm[condition](x)
        elif x.shape[0] == 0:
            y = x
        else:
            parts = [((condition == c).nonzero().squeeze(1), c) for c in condition.unique().tolist()]
            parts = [(rows, self.norm[c](x[rows])) for rows, c in parts]
            # allocated after the norms ran: under autocast their output dtype may differ from x's
            y = parts[0][1].new_empty((x.shape[0], parts[0][1].shape[1]))
            for rows, part in parts:
                y = y.index_copy(0, rows, part)
        if not self.adaptive:
            return y
        if context is None or context.dim() != 2 or context.shape[0] not in (1, len(self.conditions)):
            shape = None if context is None else tuple(context.shape)
            raise ValueError(f"ConditionNorm(adaptive=True): context must have shape ({len(self.conditions)}, C) or "
                             f"(1, C) for one condition, got {shape}")
        shift, scale = self.modulation(context).chunk(2, dim=1)
        if context.shape[0] == 1:
            row = 0
        elif isinstance(condition, int):
            row = condition
        else:
            return y * (1.0 + scale[condition]) + shift[condition]
        return y * (1.0 + scale[row]) + shift[row]


class _Conditioning(NamedTuple):
    """What condition norms read from a level; the stem runs before the input level exists."""

    condition: int | Tensor | None
    context: Tensor | None


def _apply(layers: Sequence[nn.Module], x: Tensor, level: _Level | _Conditioning) -> Tensor:
    """Run Linear / norm / activation layers in turn; condition norms get the level's condition."""
    for layer in layers:
        x = layer(x, level.condition, level.context) if isinstance(layer, ConditionNorm) else layer(x)
    return x


@dataclass
class _Patches:
    """Where each serialized point goes in the patch sequence of one level (Pointcept's pad/unpad)."""

    gather: Tensor  # (P,) serialized rank feeding each position of the padded sequence
    scatter: Tensor  # (N,) position of each serialized rank in the padded sequence
    size: int  # positions [0, full) are patches of `size` points
    full: int
    short: list[int]  # then one shorter patch per scene of fewer than `size` points


def _patches(counts: Sequence[int], size: int, device: torch.device) -> _Patches:
    full, short = [], []  # per scene: (first serialized rank, points, padded points)
    start = 0
    for n in counts:
        if n >= size:
            full.append((start, n, -(-n // size) * size))
        elif n > 0:
            short.append((start, n, n))
        start += n
    gather, scatter = [], {}
    position = 0
    for start, n, padded in full + short:
        j = torch.arange(padded, device=device)
        gather.append(start + torch.where(j < n, j, j - size))  # pad with the points one patch before
        scatter[start] = torch.arange(position, position + n, device=device)
        position += padded
    return _Patches(torch.cat(gather), torch.cat([scatter[start] for start in sorted(scatter)]), size,
                    sum(padded for _, _, padded in full), [n for _, n, _ in short])


@dataclass
class _Level:
    """The point set of one resolution as the blocks see it (Pointcept's ``Point``)."""

    feat: Tensor  # (N, C)
    sparse: SparseTensor  # sites [b, x, y, z]; its features feed the next CPE convolution
    batch: Tensor  # (N,) int64
    serialization: Serialization
    counts: list[int]  # points per scene
    condition: int | Tensor | None
    context: Tensor | None
    parent: _Level | None = None  # the finer level this one was pooled from
    cluster: Tensor | None = None  # (N_parent,) row of this level each parent point pooled into
    patches: dict = field(default_factory=dict)  # patch size -> _Patches

    @property
    def grid(self) -> Tensor:
        return self.sparse.indices[:, 1:]


class RPE(nn.Module):
    """Pointcept's relative position bias: a learned (3 * (2 bound + 1), heads) table indexed by
    the clamped per-axis grid offsets of two points of a patch, summed over the axes."""

    def __init__(self, patch_size: int, num_heads: int) -> None:
        super().__init__()
        self.pos_bnd = int((4 * patch_size) ** (1 / 3) * 2)
        self.rpe_num = 2 * self.pos_bnd + 1
        self.rpe_table = nn.Parameter(torch.zeros(3 * self.rpe_num, num_heads))
        nn.init.trunc_normal_(self.rpe_table, std=0.02)

    def forward(self, relative: Tensor) -> Tensor:
        """``relative`` (P, K, K, 3) int offsets -> (P, heads, K, K) bias."""
        index = (relative.clamp(-self.pos_bnd, self.pos_bnd) + self.pos_bnd
                 + torch.arange(3, device=relative.device) * self.rpe_num)
        bias = self.rpe_table.index_select(0, index.reshape(-1)).view(*index.shape, -1).sum(3)
        return bias.permute(0, 3, 1, 2)


class SerializedAttention(nn.Module):
    """Multi-head self-attention within the patches of one serialization order."""

    def __init__(self, channels: int, num_heads: int, patch_size: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0, order_index: int = 0,
                 enable_rpe: bool = False, enable_flash: bool = True, upcast_attention: bool = False,
                 upcast_softmax: bool = False) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"PointTransformerV3: {channels} channels do not split into {num_heads} heads")
        if enable_flash and (enable_rpe or upcast_attention or upcast_softmax):
            raise ValueError("PointTransformerV3: enable_flash=True needs enable_rpe, upcast_attention and "
                             "upcast_softmax False (as Pointcept's PT-v3m1)")
        self.channels, self.num_heads, self.patch_size = channels, num_heads, patch_size
        self.scale = qk_scale or (channels // num_heads) ** -0.5
        self.order_index, self.enable_flash = order_index, enable_flash
        self.upcast = upcast_attention or upcast_softmax
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(channels, channels * 3, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)
        self.rpe = RPE(patch_size, num_heads) if enable_rpe else None

    def _level_patches(self, level: _Level) -> _Patches:
        size = self.patch_size
        if not self.enable_flash:  # Pointcept: no masks, so no patch longer than the smallest scene
            size = min(size, min(n for n in level.counts if n > 0))
        if size not in level.patches:
            level.patches[size] = _patches(level.counts, size, level.feat.device)
        return level.patches[size]

    def forward(self, x: Tensor, level: _Level) -> Tensor:
        patches = self._level_patches(level)
        order = level.serialization.order[self.order_index][patches.gather]
        inverse = patches.scatter[level.serialization.inverse[self.order_index]]
        heads, head_dim = self.num_heads, self.channels // self.num_heads
        qkv = self.qkv(x)[order]
        dropout = self.attn_drop if self.training else 0.0
        if self.enable_flash and flash_attn is not None and qkv.is_cuda:
            lengths = [patches.size] * (patches.full // patches.size) + patches.short
            cu_seqlens = F.pad(torch.tensor(lengths, device=qkv.device).cumsum(0), (1, 0)).int()
            out = flash_attn.flash_attn_varlen_qkvpacked_func(
                qkv.to(torch.bfloat16).reshape(-1, 3, heads, head_dim), cu_seqlens, max_seqlen=patches.size,
                dropout_p=dropout, softmax_scale=self.scale).reshape(-1, self.channels).to(qkv.dtype)
        else:
            groups = [(0, patches.full, patches.size)] if patches.full else []
            start = patches.full
            for n in patches.short:
                groups.append((start, n, n))
                start += n
            outputs = []
            for start, count, size in groups:
                q, k, v = qkv[start:start + count].view(-1, size, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
                bias = None
                if self.rpe is not None:
                    grid = level.grid[order[start:start + count]].long().view(-1, size, 3)
                    bias = self.rpe(grid[:, :, None] - grid[:, None])
                if self.upcast:
                    q, k, v = q.float(), k.float(), v.float()
                    bias = None if bias is None else bias.float()
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=self.scale)
                outputs.append(out.transpose(1, 2).reshape(-1, self.channels).to(qkv.dtype))
            out = torch.cat(outputs)
        return self.proj_drop(self.proj(out[inverse]))


class Block(nn.Module):
    """CPE, attention and MLP, each with a residual (pre-norm by default)."""

    def __init__(self, channels: int, num_heads: int, patch_size: int, mlp_ratio: float, qkv_bias: bool,
                 qk_scale: float | None, attn_drop: float, proj_drop: float, drop_path: float,
                 make_ln: Callable[[int], nn.Module], pre_norm: bool, order_index: int, cpe_indice_key: str,
                 **attention) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.cpe = nn.ModuleList([SubMConv3d(channels, channels, kernel_size=3, bias=True, indice_key=cpe_indice_key),
                                  nn.Linear(channels, channels), make_ln(channels)])
        self.norm1 = nn.ModuleList([make_ln(channels)])
        self.attn = SerializedAttention(channels, num_heads, patch_size, qkv_bias, qk_scale, attn_drop, proj_drop,
                                        order_index, **attention)
        self.norm2 = nn.ModuleList([make_ln(channels)])
        self.mlp = nn.ModuleList([Mlp(channels, int(channels * mlp_ratio), proj_drop)])
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, level: _Level) -> _Level:
        feat = level.feat + _apply(self.cpe[1:], self.cpe[0](level.sparse).features, level)
        shortcut = feat
        if self.pre_norm:
            feat = _apply(self.norm1, feat, level)
        feat = shortcut + self.drop_path(self.attn(feat, level))
        if not self.pre_norm:
            feat = _apply(self.norm1, feat, level)
        shortcut = feat
        if self.pre_norm:
            feat = _apply(self.norm2, feat, level)
        feat = shortcut + self.drop_path(self.mlp[0](feat))
        if not self.pre_norm:
            feat = _apply(self.norm2, feat, level)
        level.feat, level.sparse = feat, level.sparse.replace_feature(feat)
        return level


def _shuffled(serialization: Serialization, shuffle: bool) -> Serialization:
    if not shuffle:
        return serialization
    perm = torch.randperm(serialization.code.shape[0])
    return Serialization(serialization.depth, *(t[perm.to(t.device)] for t in serialization[1:]))


class SerializedPooling(nn.Module):
    """Grid pooling by ``stride`` (a power of two): the points of one ``stride^3`` cell of a scene,
    the same prefix of every serialization code, become one point with the max of their projected
    features, then norm and GELU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, make_bn: Callable[[int], nn.Module]) -> None:
        super().__init__()
        if stride < 1 or stride & (stride - 1):
            raise ValueError(f"PointTransformerV3: stride must be a power of two, got {stride}")
        self.stride = stride
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = nn.ModuleList([make_bn(out_channels)])
        self.act = nn.ModuleList([nn.GELU()])

    def forward(self, level: _Level, shuffle: bool) -> _Level:
        serialization = level.serialization
        depth = self.stride.bit_length() - 1
        if depth > serialization.depth:
            depth = 0
        code = serialization.code >> (3 * depth)
        cells, cluster = torch.unique(code[0], sorted=True, return_inverse=True)
        rows, num = level.feat.shape[0], cells.shape[0]
        head = torch.full((num,), rows, dtype=torch.long, device=cluster.device).scatter_reduce(
            0, cluster, torch.arange(rows, device=cluster.device), reduce="amin")
        # The max over a cell as a pooling over a kernel map: the kernel offset of a point is its
        # position inside the cell, so each offset reaches every cell at most once.
        side = 1 << depth
        inside = (level.grid & (side - 1)).long()
        offset = (inside[:, 0] * side + inside[:, 1]) * side + inside[:, 2]
        by_offset = torch.sort(offset, stable=True).indices
        pairs = torch.stack([by_offset, cluster[by_offset]]).int()
        pair_offsets = F.pad(torch.bincount(offset, minlength=side**3).cumsum(0), (1, 0))
        feat = sparse_max_pool(self.proj(level.feat), pairs, pair_offsets, num)

        code = code[:, head]
        order = torch.sort(code, dim=1, stable=True).indices
        inverse = torch.empty_like(order).scatter_(1, order, torch.arange(num, device=order.device).expand_as(order))
        batch = level.batch[head]
        grid = level.grid[head] >> depth
        sparse = SparseTensor(feat, torch.cat([batch[:, None].int(), grid.int()], 1),
                              [((s - 1) >> depth) + 1 for s in level.sparse.spatial_shape], level.sparse.batch_size)
        condition = level.condition[head] if isinstance(level.condition, Tensor) else level.condition
        pooled = _Level(feat, sparse, batch, _shuffled(Serialization(serialization.depth - depth, code, order, inverse),
                                                       shuffle),
                        torch.bincount(batch, minlength=len(level.counts)).tolist(), condition, level.context,
                        parent=level, cluster=cluster)
        pooled.feat = _apply([*self.norm, *self.act], feat, pooled)
        pooled.sparse = sparse.replace_feature(pooled.feat)
        return pooled


class SerializedUnpooling(nn.Module):
    """Back to the parent level: ``proj(coarse)[cluster] + proj_skip(parent)``, each projection a
    Linear, norm and GELU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int,
                 make_bn: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.proj = nn.ModuleList([nn.Linear(in_channels, out_channels), make_bn(out_channels), nn.GELU()])
        self.proj_skip = nn.ModuleList([nn.Linear(skip_channels, out_channels), make_bn(out_channels), nn.GELU()])

    def forward(self, level: _Level) -> _Level:
        parent = level.parent
        skip = _apply(self.proj_skip, parent.feat, parent)
        up = _apply(self.proj, level.feat, level)
        # Pointcept adds the upsampled features to the point features but leaves the sparse tensor
        # with the skip branch alone: the first block's CPE convolves the skip features (its
        # released checkpoints were trained so).
        return replace(parent, feat=skip + up[level.cluster], sparse=parent.sparse.replace_feature(skip))


class PointTransformerV3(nn.Module):
    """Point Transformer V3 with a linear segmentation head (Pointcept's ``DefaultSegmentorV2``).

    Arguments as Pointcept's ``PT-v3m1`` (module docstring), plus ``num_classes`` (the
    ``seg_head`` Linear's outputs; 0 = no head, ``forward`` returns the decoder's features) and
    ``context_channels`` (of the adaptive PDNorm modulation). With the defaults (6 input channels,
    20 classes) the model has 46,167,572 parameters, as Pointcept's.
    """

    def __init__(self, in_channels: int = 6, num_classes: int = 20,
                 order: str | Sequence[str] = ("z", "z-trans", "hilbert", "hilbert-trans"),
                 stride: Sequence[int] = (2, 2, 2, 2), enc_depths: Sequence[int] = (2, 2, 2, 6, 2),
                 enc_channels: Sequence[int] = (32, 64, 128, 256, 512), enc_num_head: Sequence[int] = (2, 4, 8, 16, 32),
                 enc_patch_size: Sequence[int] = (1024,) * 5, dec_depths: Sequence[int] = (2, 2, 2, 2),
                 dec_channels: Sequence[int] = (64, 64, 128, 256), dec_num_head: Sequence[int] = (4, 4, 8, 16),
                 dec_patch_size: Sequence[int] = (1024,) * 4, mlp_ratio: float = 4, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0, drop_path: float = 0.3,
                 pre_norm: bool = True, shuffle_orders: bool = True, enable_rpe: bool = False,
                 enable_flash: bool = True,
                 upcast_attention: bool = False, upcast_softmax: bool = False, enc_mode: bool = False,
                 pdnorm_bn: bool = False, pdnorm_ln: bool = False, pdnorm_decouple: bool = True,
                 pdnorm_adaptive: bool = False, pdnorm_affine: bool = True,
                 pdnorm_conditions: Sequence[str] = ("ScanNet", "S3DIS", "Structured3D"),
                 context_channels: int = 256) -> None:
        super().__init__()
        self.order = (order,) if isinstance(order, str) else tuple(order)
        if not self.order or any(o not in ORDERS for o in self.order):
            raise ValueError(f"PointTransformerV3: order must name orders among {ORDERS}, got {order!r}")
        stages = len(enc_depths)
        for name, value, size in (("stride", stride, stages - 1), ("enc_channels", enc_channels, stages),
                                  ("enc_num_head", enc_num_head, stages), ("enc_patch_size", enc_patch_size, stages),
                                  *(() if enc_mode else (("dec_depths", dec_depths, stages - 1),
                                                         ("dec_channels", dec_channels, stages - 1),
                                                         ("dec_num_head", dec_num_head, stages - 1),
                                                         ("dec_patch_size", dec_patch_size, stages - 1)))):
            if len(value) != size:
                raise ValueError(f"PointTransformerV3: {name} must have {size} entries for {stages} stages "
                                 f"(len(enc_depths)), got {tuple(value)}")
        if enc_mode and num_classes:
            raise ValueError("PointTransformerV3: enc_mode=True returns the coarsest level's features; pass "
                             "num_classes=0")
        self.num_stages, self.enc_mode, self.shuffle_orders = stages, enc_mode, shuffle_orders
        self.pdnorm = pdnorm_bn or pdnorm_ln
        self.pdnorm_conditions = tuple(pdnorm_conditions)

        condition_norm = partial(ConditionNorm, conditions=self.pdnorm_conditions, context_channels=context_channels,
                                 decouple=pdnorm_decouple, adaptive=pdnorm_adaptive)
        batch_norm = partial(nn.BatchNorm1d, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        layer_norm = nn.LayerNorm
        make_bn = (partial(condition_norm, make_norm=partial(batch_norm, affine=pdnorm_affine)) if pdnorm_bn
                   else batch_norm)
        make_ln = (partial(condition_norm, make_norm=partial(layer_norm, elementwise_affine=pdnorm_affine))
                   if pdnorm_ln else layer_norm)
        attention = dict(enable_rpe=enable_rpe, enable_flash=enable_flash, upcast_attention=upcast_attention,
                         upcast_softmax=upcast_softmax)

        def block(channels, heads, patch, path, index, stage):
            return Block(channels, heads, patch, mlp_ratio, qkv_bias, qk_scale, attn_drop, proj_drop, path, make_ln,
                         pre_norm, index % len(self.order), f"stage{stage}", **attention)

        self.embedding = nn.Module()
        self.embedding.stem = nn.ModuleDict(dict(
            conv=SubMConv3d(in_channels, enc_channels[0], kernel_size=5, padding=1, bias=False, indice_key="stem"),
            norm=make_bn(enc_channels[0]), act=nn.GELU()))

        paths = torch.linspace(0, drop_path, sum(enc_depths)).tolist()
        self.enc = nn.ModuleDict()
        for s in range(stages):
            stage_paths = paths[sum(enc_depths[:s]):sum(enc_depths[:s + 1])]
            enc = nn.ModuleDict()
            if s > 0:
                enc["down"] = SerializedPooling(enc_channels[s - 1], enc_channels[s], stride[s - 1], make_bn)
            for i in range(enc_depths[s]):
                enc[f"block{i}"] = block(enc_channels[s], enc_num_head[s], enc_patch_size[s], stage_paths[i], i, s)
            self.enc[f"enc{s}"] = enc

        self.out_channels = enc_channels[-1] if enc_mode else dec_channels[0]
        if not enc_mode:
            paths = torch.linspace(0, drop_path, sum(dec_depths)).tolist()
            widths = list(dec_channels) + [enc_channels[-1]]
            self.dec = nn.ModuleDict()
            for s in reversed(range(stages - 1)):
                stage_paths = paths[sum(dec_depths[:s]):sum(dec_depths[:s + 1])][::-1]
                dec = nn.ModuleDict({"up": SerializedUnpooling(widths[s + 1], enc_channels[s], widths[s], make_bn)})
                for i in range(dec_depths[s]):
                    dec[f"block{i}"] = block(widths[s], dec_num_head[s], dec_patch_size[s], stage_paths[i], i, s)
                self.dec[f"dec{s}"] = dec
        self.seg_head = nn.Linear(self.out_channels, num_classes) if num_classes else None

    def _condition(self, condition: Condition, rows: int) -> int | Tensor | None:
        if not self.pdnorm:
            return None
        if condition is None:
            raise ValueError(f"PointTransformerV3 with PDNorm needs a condition (one of {self.pdnorm_conditions}, "
                             "its index, or an (N,) int64 index per point)")
        return condition_index(condition, self.pdnorm_conditions, rows, "PointTransformerV3")

    def forward(self, x: SparseTensor, condition: Condition = None, context: Tensor | None = None, *,
                after_stem: Callable[[SparseTensor], SparseTensor] | None = None):
        """Per-point logits ``(N, num_classes)`` in the order of ``x``'s rows (of ``after_stem``'s
        output when given; the decoder's ``(N, dec_channels[0])`` features when ``num_classes=0``;
        with ``enc_mode`` the coarsest level as a ``SparseTensor``).

        Args:
            x: ``SparseTensor`` of ``in_channels`` features at distinct sites ``[b, gx, gy, gz]``
                (grid coordinates >= 0, used as given: the serialization reads them).
            condition: PDNorm models only: the dataset of the batch (a name of
                ``pdnorm_conditions`` or its index) or an ``(N,)`` int64 index per point.
            context: adaptive PDNorm only: ``(len(pdnorm_conditions), context_channels)``
                prompts, or ``(1, context_channels)`` for a single condition.
            after_stem: maps the embedding's output (``enc_channels[0]`` wide) to the tensor the
                encoder continues from: same width and batch, distinct sites, ``x``'s rows first;
                sites may be added, as UniPre3D's point fusion does. The encoder serializes the
                sites it returns (UniPre3D re-serializes its fused point set the same way).
        """
        if not isinstance(x, SparseTensor) or x.ndim != 3:
            raise TypeError(f"PointTransformerV3 expects a 3-D ppt.sparse.SparseTensor, got {type(x).__name__}")
        if x.indices.shape[0] == 0:
            raise ValueError("PointTransformerV3: the input has no points")
        shuffle = self.shuffle_orders and self.training
        condition = self._condition(condition, x.features.shape[0])
        stem = self.embedding.stem
        x = x.replace_feature(_apply([stem.norm, stem.act], stem.conv(x).features, _Conditioning(condition, context)))
        if after_stem is not None:
            x = self._after_stem(after_stem, x, condition)
        batch = x.indices[:, 0].long()
        serialization = _shuffled(serialize(x.indices[:, 1:], batch, self.order), shuffle)
        counts = torch.bincount(batch, minlength=x.batch_size).tolist()
        level = _Level(x.features, x, batch, serialization, counts, condition, context)
        for enc in self.enc.values():
            for name, module in enc.items():
                level = module(level, shuffle) if name == "down" else module(level)
        if self.enc_mode:
            return level.sparse
        for dec in self.dec.values():
            for module in dec.values():
                level = module(level)
        return level.feat if self.seg_head is None else self.seg_head(level.feat)

    @staticmethod
    def _after_stem(after_stem: Callable[[SparseTensor], SparseTensor], x: SparseTensor,
                    condition: int | Tensor | None) -> SparseTensor:
        y = after_stem(x)
        if not isinstance(y, SparseTensor):
            raise TypeError(f"PointTransformerV3: after_stem must return a ppt.sparse.SparseTensor, got "
                            f"{type(y).__name__}")
        rows, width = x.features.shape
        if y.features.shape[1] != width or y.batch_size != x.batch_size or y.features.shape[0] < rows:
            raise ValueError(f"PointTransformerV3: after_stem must return {width} features per row, batch size "
                             f"{x.batch_size} and at least the stem's {rows} rows, got {y.features.shape[1]}, "
                             f"{y.batch_size} and {y.features.shape[0]}")
        if isinstance(condition, Tensor) and y.features.shape[0] != rows:
            raise ValueError("PointTransformerV3: a per-point condition cannot follow the rows after_stem adds; pass "
                             "the batch's condition (a name or index)")
        return y

    @staticmethod
    def convert_pointcept_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A Pointcept ``DefaultSegmentorV2`` + ``PT-v3m1`` state dict (``backbone.*``,
        ``seg_head.*``; ``module.`` already removed) or a bare backbone's, in this model's names:
        ppt keeps Pointcept's module names and spconv's weight layout, so only ``backbone.`` goes."""
        return {key.removeprefix("backbone."): value for key, value in state_dict.items()}
