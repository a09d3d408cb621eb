"""The layers of the Point-BERT / Point-MAE transformer that Point-MAE, DAPT and the PEFT baselines share.

Module and parameter names follow the official Point-MAE code (``encoder.first_conv``,
``blocks.blocks.<i>.attn.qkv``, ...) so its checkpoints load by name; DAPT's per-channel scale and
shift parameters keep DAPT's names (``tfts_gamma_<i>`` / ``tfts_beta_<i>``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppt.ops import farthest_point_sample, knn

__all__ = [
    "group_points",
    "PatchEncoder",
    "positional_mlp",
    "classification_head",
    "scale_shift_parameters",
    "scaled_layer_norm",
    "scaled_linear",
    "DropPath",
    "Mlp",
    "Attention",
    "Block",
    "TransformerEncoder",
    "init_transformer_weights",
]


def group_points(points: Tensor, num_groups: int, group_size: int) -> tuple[Tensor, Tensor]:
    """Split clouds into local patches: ``num_groups`` centres by farthest point sampling (from the
    first point) and the ``group_size`` nearest points of each.

    Args:
        points: ``(B, N, 3)`` float with ``N >= max(num_groups, group_size)``.

    Returns:
        ``neighborhood`` ``(B, G, K, 3)``: each patch's points relative to its centre, nearest first;
        ``centers`` ``(B, G, 3)``.
    """
    if points.dim() != 3 or points.shape[2] != 3 or not points.is_floating_point():
        raise ValueError(f"points must be a float tensor of shape (B, N, 3), got {points.dtype} {tuple(points.shape)}")
    if points.shape[1] < max(num_groups, group_size):
        raise ValueError(f"points: clouds of {points.shape[1]} points are too small for {num_groups} groups of "
                         f"{group_size} points")
    batch = torch.arange(points.shape[0], device=points.device)
    center_index = farthest_point_sample(points, num_groups)
    centers = points[batch[:, None], center_index]
    _, neighbor_index = knn(centers, points, group_size)
    neighborhood = points[batch[:, None, None], neighbor_index] - centers.unsqueeze(2)
    return neighborhood, centers


class PatchEncoder(nn.Module):
    """Mini-PointNet that embeds each patch: shared MLP 3->128->256, max-pool, concatenation of the pooled
    feature to every point, shared MLP 512->512->``dim``, max-pool (Point-MAE's ``Encoder``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
                                        nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                                         nn.Conv1d(512, dim, 1))

    def forward(self, neighborhood: Tensor) -> Tensor:
        """``(B, G, K, 3)`` -> ``(B, G, dim)``."""
        batch, groups, size, _ = neighborhood.shape
        feature = self.first_conv(neighborhood.reshape(batch * groups, size, 3).transpose(1, 2))
        pooled = feature.amax(dim=2, keepdim=True)
        feature = self.second_conv(torch.cat([pooled.expand(-1, -1, size), feature], dim=1))
        return feature.amax(dim=2).reshape(batch, groups, -1)


def positional_mlp(dim: int) -> nn.Sequential:
    """Embedding of patch centres: Linear(3, 128), GELU, Linear(128, ``dim``)."""
    return nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))


def classification_head(in_features: int, num_classes: int) -> nn.Sequential:
    """Point-MAE's fine-tuning head: two 256-wide Linear-BatchNorm-ReLU-Dropout(0.5) layers, then the classifier."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return nn.Sequential(
        nn.Linear(in_features, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(256, num_classes))


def scale_shift_parameters(channels: int) -> tuple[nn.Parameter, nn.Parameter]:
    """DAPT's per-channel scale (init N(1, 0.02)) and shift (init N(0, 0.02)), applied as ``x * scale + shift``."""
    return (nn.Parameter(torch.empty(channels).normal_(1.0, 0.02)),
            nn.Parameter(torch.empty(channels).normal_(0.0, 0.02)))


def scaled_linear(x: Tensor, layer: nn.Linear, scale: Tensor, shift: Tensor) -> Tensor:
    """``layer(x) * scale + shift`` as one linear layer with the scale folded into its weight and bias.

    The same function, but autograd keeps ``x`` rather than the layer's output for the scale's
    gradient: with DAPT's frozen backbone the product form keeps every qkv and fc1 output (3x and 4x
    the token width) alive until backward.
    """
    bias = shift if layer.bias is None else layer.bias * scale + shift
    return F.linear(x, layer.weight * scale[:, None], bias)


def scaled_layer_norm(x: Tensor, norm: nn.LayerNorm, scale: Tensor, shift: Tensor) -> Tensor:
    """``norm(x) * scale + shift`` with the scale folded into the norm's affine (see :func:`scaled_linear`)."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight * scale, norm.bias * scale + shift, norm.eps)


class DropPath(nn.Module):
    """Stochastic depth: zero a sample's residual branch with probability ``p`` (rescaling the rest)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must lie in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """fc1, GELU, fc2 (with dropout); ``scale_shift`` adds DAPT's scale/shift after fc1 and after fc2."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0, scale_shift: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)
        self.scale_shift = scale_shift
        if scale_shift:
            self.tfts_gamma_1, self.tfts_beta_1 = scale_shift_parameters(hidden)
            self.tfts_gamma_2, self.tfts_beta_2 = scale_shift_parameters(dim)

    def forward(self, x: Tensor) -> Tensor:
        if not self.scale_shift:
            return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
        x = self.drop(self.act(scaled_linear(x, self.fc1, self.tfts_gamma_1, self.tfts_beta_1)))
        return self.drop(scaled_linear(x, self.fc2, self.tfts_gamma_2, self.tfts_beta_2))


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection without bias (Point-MAE's ``Attention``).

    Args:
        scale_shift: DAPT's scale/shift after qkv and after the output projection.
        qkv_update: a module whose output is added to ``qkv(x)`` (LoRA's low-rank update), or None.
    """

    def __init__(self, dim: int, heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 scale_shift: bool = False, qkv_update: nn.Module | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.lora = qkv_update
        self.scale_shift = scale_shift
        if scale_shift:
            self.tfts_gamma_1, self.tfts_beta_1 = scale_shift_parameters(dim * 3)
            self.tfts_gamma_2, self.tfts_beta_2 = scale_shift_parameters(dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        if self.scale_shift:
            qkv = scaled_linear(x, self.qkv, self.tfts_gamma_1, self.tfts_beta_1)
            if self.lora is not None:
                qkv = qkv + self.lora(x) * self.tfts_gamma_1
        else:
            qkv = self.qkv(x) if self.lora is None else self.qkv(x) + self.lora(x)
        q, k, v = qkv.reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        # softmax(q k^T / sqrt(head_dim)) v, as the official code computes it explicitly.
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(batch, tokens, dim)
        if self.scale_shift:
            return self.proj_drop(scaled_linear(x, self.proj, self.tfts_gamma_2, self.tfts_beta_2))
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (+ a parallel adapter).

    Args:
        scale_shift: DAPT's scale/shift inside attention and MLP (see :class:`Attention`, :class:`Mlp`).
        qkv_update: LoRA's update of the qkv projection (see :class:`Attention`).
        adapter: a module run on the MLP's input (before ``norm2``) and added to the MLP's output,
            outside stochastic depth (AdaptFormer's parallel adapter), or None.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, scale_shift: bool = False, qkv_update: nn.Module | None = None,
                 adapter: nn.Module | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, attn_drop, drop, scale_shift=scale_shift, qkv_update=qkv_update)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop, scale_shift=scale_shift)
        self.adapter = adapter

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        mlp = self.drop_path(self.mlp(self.norm2(x)))
        if self.adapter is not None:
            mlp = mlp + self.adapter(x)
        return x + mlp


class TransformerEncoder(nn.Module):
    """A stack of blocks (``blocks.blocks.<i>`` in the official checkpoints).

    ``forward(x, pos)`` adds ``pos`` before every block, as Point-MAE does; ``pos=None`` leaves it out
    (DAPT adds it once). With ``prompt_tokens > 0`` every block gets its own learnable prompts, inserted
    after the first (cls) token and dropped after the block (VPT-deep).
    """

    def __init__(self, blocks: list[nn.Module], dim: int, prompt_tokens: int = 0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.prompt_tokens = None
        if prompt_tokens:
            self.prompt_tokens = nn.Parameter(torch.empty(len(blocks), prompt_tokens, dim))
            nn.init.trunc_normal_(self.prompt_tokens, std=0.02)

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        for index, block in enumerate(self.blocks):
            if pos is not None:
                x = x + pos
            if self.prompt_tokens is None:
                x = block(x)
                continue
            prompts = self.prompt_tokens[index].expand(x.shape[0], -1, -1)
            x = block(torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1))
            x = torch.cat([x[:, :1], x[:, 1 + prompts.shape[1]:]], dim=1)
        return x


def init_transformer_weights(module: nn.Module) -> None:
    """Point-MAE's initialisation (apply with ``Module.apply``): truncated normal (std 0.02) weights and
    zero biases for Linear and Conv1d, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Conv1d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
