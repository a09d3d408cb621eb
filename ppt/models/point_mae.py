"""Point-MAE (Pang et al., ECCV 2022): the classifier its pre-trained transformer is fine-tuned as
(with the PEFT baselines as a switch), and the masked-autoencoder pre-training model.

Both follow the official code (github.com/Pang-Yatian/Point-MAE, ``models/Point_MAE.py``) module for
module and name for name, so official checkpoints load by key (see :mod:`ppt.models.official_weights`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ppt.models.adapters import BottleneckAdapter, LowRankUpdate
from ppt.models.peft import PEFT_METHODS, PeftModule, freeze_by_rule
from ppt.models.point_transformer import (
    Block,
    PatchEncoder,
    TransformerEncoder,
    classification_head,
    group_points,
    init_transformer_weights,
    positional_mlp,
)
from ppt.ops import knn

__all__ = ["PointMAE", "PointMAEPretraining", "chamfer_l2"]

_DEFAULT_RANK = {"lora": 8, "adaptformer": 64}
_ADAPTFORMER_SCALE = 0.1


def _drop_path_rates(drop_path: float, depth: int) -> list[float]:
    return torch.linspace(0, drop_path, depth).tolist()


class PointMAE(PeftModule):
    """Point-MAE's fine-tuning classifier (the official ``PointTransformer``).

    Clouds are split into ``num_groups`` patches of ``group_size`` points (FPS centres + kNN), each
    embedded by a mini-PointNet; a cls token and the patches pass ``depth`` transformer blocks with the
    centres' positional embedding added before every block; the head reads ``[cls, max over patches]``.

    Args:
        num_classes, num_groups, group_size, depth, dim, heads, drop_path: as the official configs
            (ScanObjectNN: 128 groups; ModelNet40: 64 groups; drop path 0.1); ``num_classes=0``
            builds no head (the transformer as a backbone, e.g. of :class:`ppt.models.UniPre3D`).
        peft: which parameters train (``"full"``, ``"linear"``, ``"bitfit"``, ``"lora"``,
            ``"adaptformer"``, ``"vpt_deep"``; rules in :mod:`ppt.models.peft`; DAPT is :class:`ppt.models.DAPT`).
        peft_rank: LoRA rank (default 8) or AdaptFormer bottleneck (default 64).
        prompt_tokens: prompts per block for ``"vpt_deep"`` (default 10).
        frozen_norm_stats: keep the running statistics of frozen BatchNorm layers (see :mod:`ppt.models.peft`).
    """

    def __init__(self, num_classes: int = 15, num_groups: int = 128, group_size: int = 32, depth: int = 12,
                 dim: int = 384, heads: int = 6, drop_path: float = 0.1, *, peft: str = "full",
                 peft_rank: int | None = None, prompt_tokens: int = 10, frozen_norm_stats: bool = False) -> None:
        super().__init__()
        if peft not in PEFT_METHODS or peft == "dapt":
            raise ValueError(f"PointMAE peft must be one of {[m for m in PEFT_METHODS if m != 'dapt']} (DAPT is "
                             f"ppt.models.DAPT), got {peft!r}")
        self.num_groups = num_groups
        self.group_size = group_size
        self.peft = peft
        self.frozen_norm_stats = frozen_norm_stats
        if peft_rank is not None and peft not in _DEFAULT_RANK:
            raise ValueError(f"peft_rank applies to {sorted(_DEFAULT_RANK)}, not to peft={peft!r}")
        if peft == "vpt_deep" and prompt_tokens < 1:
            raise ValueError(f"vpt_deep needs prompt_tokens >= 1, got {prompt_tokens}")
        rank = peft_rank if peft_rank is not None else _DEFAULT_RANK.get(peft, 0)

        self.encoder = PatchEncoder(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = positional_mlp(dim)
        self.blocks = TransformerEncoder(
            [Block(dim, heads, drop_path=rate,
                   qkv_update=LowRankUpdate(dim, 3 * dim, rank) if peft == "lora" else None,
                   adapter=BottleneckAdapter(dim, rank, activation="relu", scale=_ADAPTFORMER_SCALE)
                   if peft == "adaptformer" else None)
             for rate in _drop_path_rates(drop_path, depth)],
            dim, prompt_tokens=prompt_tokens if peft == "vpt_deep" else 0)
        self.norm = nn.LayerNorm(dim)
        # num_classes=0 leaves the head out (timm's convention): the transformer as a backbone.
        self.cls_head_finetune = classification_head(2 * dim, num_classes) if num_classes else nn.Identity()

        # The official code initialises the transformer only when training from scratch (a checkpoint
        # replaces it otherwise); the head keeps PyTorch's default initialisation either way.
        for part in (self.encoder, self.pos_embed, self.blocks, self.norm):
            part.apply(init_transformer_weights)
        for module in self.blocks.modules():
            if isinstance(module, (BottleneckAdapter, LowRankUpdate)):
                module.reset_parameters()
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.cls_pos, std=0.02)
        freeze_by_rule(self, peft)

    def forward_tokens(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, N, 3)`` -> the last block's tokens ``(B, 1 + num_groups, dim)`` (cls first, before the
        final norm) and the group centres ``(B, num_groups, 3)``."""
        neighborhood, centers = group_points(points, self.num_groups, self.group_size)
        tokens = self.encoder(neighborhood)
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(batch, -1, -1), self.pos_embed(centers)], dim=1)
        return self.blocks(x, pos), centers

    def forward_features(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` -> the normalised tokens ``(B, 1 + num_groups, dim)`` (cls first)."""
        return self.norm(self.forward_tokens(points)[0])

    def forward(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` -> logits ``(B, num_classes)`` (the pooled features ``(B, 2 dim)`` when ``num_classes=0``)."""
        x = self.forward_features(points)
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1:].amax(dim=1)], dim=-1))


def chamfer_l2(predicted: Tensor, target: Tensor) -> Tensor:
    """Squared-distance Chamfer loss of point sets ``(S, P, 3)`` and ``(S, Q, 3)``: the mean over
    predicted points of the squared distance to the nearest target point plus the converse (the
    ``ChamferDistanceL2`` Point-MAE trains with), differentiable through :func:`ppt.ops.knn`."""
    to_target, _ = knn(predicted, target, 1)
    to_predicted, _ = knn(target, predicted, 1)
    return to_target.mean() + to_predicted.mean()


class MaskedPointEncoder(nn.Module):
    """The pre-training encoder (official ``MaskTransformer``): embeds all patches, keeps the visible
    ones and runs them through the transformer (no cls token)."""

    def __init__(self, depth: int, dim: int, heads: int, drop_path: float, mask_ratio: float) -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in [0, 1), got {mask_ratio}")
        self.mask_ratio = mask_ratio
        self.encoder = PatchEncoder(dim)
        self.pos_embed = positional_mlp(dim)
        self.blocks = TransformerEncoder([Block(dim, heads, drop_path=rate)
                                          for rate in _drop_path_rates(drop_path, depth)], dim)
        self.norm = nn.LayerNorm(dim)
        self.apply(init_transformer_weights)

    def random_mask(self, batch: int, groups: int, device: torch.device) -> Tensor:
        """``(B, G)`` bool, True on ``int(mask_ratio * G)`` uniformly chosen patches of each cloud."""
        masked = int(self.mask_ratio * groups)
        order = torch.rand(batch, groups, device=device).argsort(dim=1)
        mask = torch.zeros(batch, groups, dtype=torch.bool, device=device)
        return mask.scatter_(1, order[:, :masked], True)

    def forward(self, neighborhood: Tensor, centers: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the visible tokens ``(B, V, dim)`` (in patch order) and the mask ``(B, G)``."""
        batch, groups = centers.shape[:2]
        mask = self.random_mask(batch, groups, centers.device)
        tokens = self.encoder(neighborhood)
        visible = tokens[~mask].reshape(batch, -1, tokens.shape[-1])
        pos = self.pos_embed(centers[~mask].reshape(batch, -1, 3))
        return self.norm(self.blocks(visible, pos)), mask


class MaskedPointDecoder(nn.Module):
    """The pre-training decoder (official ``TransformerDecoder``): blocks with the positional embedding
    added before each, then LayerNorm of the last ``masked`` tokens."""

    def __init__(self, depth: int, dim: int, heads: int, drop_path: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, heads, drop_path=rate) for rate in _drop_path_rates(drop_path, depth)])
        self.norm = nn.LayerNorm(dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor, pos: Tensor, masked: int) -> Tensor:
        for block in self.blocks:
            x = block(x + pos)
        return self.norm(x[:, -masked:])


class PointMAEPretraining(nn.Module):
    """Point-MAE's masked autoencoder (official ``Point_MAE``): mask ``mask_ratio`` of the patches at
    random, encode the visible ones, decode mask tokens at the masked centres and regress each masked
    patch's ``group_size`` points, scored by :func:`chamfer_l2`.

    ``forward(points (B, N, 3))`` returns the scalar loss. Defaults are the official ``pretrain.yaml``
    (64 groups of 32 points from 1024-point ShapeNet clouds, 12 + 4 blocks of width 384).
    """

    def __init__(self, num_groups: int = 64, group_size: int = 32, depth: int = 12, dim: int = 384, heads: int = 6,
                 drop_path: float = 0.1, mask_ratio: float = 0.6, decoder_depth: int = 4, decoder_heads: int = 6) -> None:
        super().__init__()
        if int(mask_ratio * num_groups) < 1:
            raise ValueError(f"mask_ratio {mask_ratio} masks no patch of {num_groups}; nothing to reconstruct")
        self.num_groups = num_groups
        self.group_size = group_size
        self.MAE_encoder = MaskedPointEncoder(depth, dim, heads, drop_path, mask_ratio)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos_embed = positional_mlp(dim)
        self.MAE_decoder = MaskedPointDecoder(decoder_depth, dim, decoder_heads, drop_path)
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * group_size, 1))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def reconstruct(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The predicted and true masked patches ``(B * M, group_size, 3)`` (relative to their centres) and the mask."""
        neighborhood, centers = group_points(points, self.num_groups, self.group_size)
        visible, mask = self.MAE_encoder(neighborhood, centers)
        batch, _, dim = visible.shape
        pos_visible = self.decoder_pos_embed(centers[~mask]).reshape(batch, -1, dim)
        pos_masked = self.decoder_pos_embed(centers[mask]).reshape(batch, -1, dim)
        masked = pos_masked.shape[1]
        x = torch.cat([visible, self.mask_token.expand(batch, masked, -1)], dim=1)
        decoded = self.MAE_decoder(x, torch.cat([pos_visible, pos_masked], dim=1), masked)
        predicted = self.increase_dim(decoded.transpose(1, 2)).transpose(1, 2).reshape(batch * masked, -1, 3)
        return predicted, neighborhood[mask].reshape(batch * masked, -1, 3), mask

    def forward(self, points: Tensor) -> Tensor:
        predicted, target, _ = self.reconstruct(points)
        return chamfer_l2(predicted, target)
