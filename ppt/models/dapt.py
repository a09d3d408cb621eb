"""DAPT (Zhou et al., CVPR 2024): Dynamic Adapters and Internal Prompts on a frozen Point-MAE transformer.

Follows the official code (github.com/LMD0311/DAPT, ``models/DAPT.py``, class ``PointTransformer_DAPT``)
and its parameter names, so official DAPT checkpoints load by key:

* every block has a Dynamic Adapter (``Adapter_MLP``) parallel to its MLP: own LayerNorm, down
  projection to ``rank``, GELU, dropout, zero-initialised up projection, times a per-token scale
  ``relu(Linear(dim, 1))``; it reads the MLP's (normalised, scaled and shifted) input;
* every block appends an Internal Prompt, the token mean of ``gelu(adapter output)`` (scaled and
  shifted), after the cls token; prompts are kept, so the sequence grows by one per block;
* per-channel scale/shift (``tfts_gamma_*`` / ``tfts_beta_*``) after the patch encoder, the final norm,
  both block norms, qkv, the attention projection, both MLP layers and the prompt;
* the positional embedding is added once, before the first block;
* the head reads the concatenation of ``head_features`` from cls token, prompts and patch tokens.

Trainable: head, cls token/pos, scale/shift and adapters (rule ``"dapt"`` of :mod:`ppt.models.peft`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppt.models.adapters import BottleneckAdapter
from ppt.models.peft import PeftModule, freeze_by_rule
from ppt.models.point_transformer import (
    Block,
    PatchEncoder,
    TransformerEncoder,
    classification_head,
    group_points,
    init_transformer_weights,
    positional_mlp,
    scale_shift_parameters,
    scaled_layer_norm,
)

__all__ = ["DAPT", "DAPTBlock", "HEAD_FEATURES"]

HEAD_FEATURES = ("cls", "prompt_mean", "prompt_max", "patch_max", "patch_mean")
"""Features the head can read: the cls token, mean or max over the Internal Prompts, max or mean over
the patch tokens (the official configs' ``class_token`` / ``prompt_token`` / ``patch_token``)."""


class DAPTBlock(Block):
    """A Point-MAE block with DAPT's Dynamic Adapter, scale/shift and Internal Prompt.

    ``forward`` maps ``(B, T, dim)`` to ``(B, T + 1, dim)``: the block's output with the new prompt
    inserted after the first ``prompt_position`` tokens (1: after the cls token; 0: in front, for
    the part-segmentation model, which has no cls token).
    """

    def __init__(self, dim: int, heads: int, *, rank: int, adapter_dropout: float, drop_path: float,
                 prompt_position: int = 1) -> None:
        super().__init__(dim, heads, drop_path=drop_path, scale_shift=True)
        self.prompt_position = prompt_position
        self.Adapter_MLP = BottleneckAdapter(dim, rank, dropout=adapter_dropout, activation="gelu",
                                             layer_norm=True, dynamic_scale=True)
        self.tfts_gamma_1, self.tfts_beta_1 = scale_shift_parameters(dim)
        self.tfts_gamma_2, self.tfts_beta_2 = scale_shift_parameters(dim)
        self.tfts_gamma_3, self.tfts_beta_3 = scale_shift_parameters(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(scaled_layer_norm(x, self.norm1, self.tfts_gamma_1, self.tfts_beta_1)))
        mlp_input = scaled_layer_norm(x, self.norm2, self.tfts_gamma_2, self.tfts_beta_2)
        adapted = self.Adapter_MLP(mlp_input)
        x = x + self.drop_path(self.mlp(mlp_input) + adapted)
        prompt = F.gelu(adapted).mean(dim=1, keepdim=True) * self.tfts_gamma_3 + self.tfts_beta_3
        return torch.cat([x[:, :self.prompt_position], prompt, x[:, self.prompt_position:]], dim=1)


class DAPT(PeftModule):
    """DAPT classifier. Defaults are the official PB_T50_RS config (``finetune_scan_hardest_dapt.yaml``);
    OBJ_BG uses ``adapter_dropout=0.5``; OBJ_ONLY ``adapter_dropout=0, drop_path=0.1,
    head_features=("cls", "prompt_mean")``; ModelNet40 ``num_classes=40, num_groups=64, rank=72,
    adapter_dropout=0, drop_path=0.1, head_features=("cls", "patch_max")``.

    Args:
        num_classes, num_groups, group_size: as :class:`ppt.models.PointMAE`.
        rank: Dynamic Adapter bottleneck.
        adapter_dropout: dropout inside the adapters.
        drop_path: stochastic depth rate of the last block (linear from 0).
        head_features: names from :data:`HEAD_FEATURES`, concatenated in this order (the official
            order is cls, prompt, patch).
        depth, dim, heads: the transformer's size (Point-MAE: 12 x 384 x 6).
        frozen_norm_stats: keep the running statistics of the frozen encoder's BatchNorm layers
            (the official code updates them; see :mod:`ppt.models.peft`).
    """

    def __init__(self, num_classes: int = 15, num_groups: int = 128, group_size: int = 32, rank: int = 64,
                 adapter_dropout: float = 0.2, drop_path: float = 0.3,
                 head_features: Sequence[str] = ("cls", "prompt_mean", "patch_max"), *, depth: int = 12,
                 dim: int = 384, heads: int = 6, frozen_norm_stats: bool = False) -> None:
        super().__init__()
        head_features = tuple(head_features)
        unknown = [name for name in head_features if name not in HEAD_FEATURES]
        if not head_features or unknown or len(set(head_features)) != len(head_features):
            raise ValueError(f"head_features must be distinct names from {HEAD_FEATURES}, got {head_features}")
        self.num_groups = num_groups
        self.group_size = group_size
        self.head_features = head_features
        self.frozen_norm_stats = frozen_norm_stats

        self.encoder = PatchEncoder(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = positional_mlp(dim)
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = TransformerEncoder(
            [DAPTBlock(dim, heads, rank=rank, adapter_dropout=adapter_dropout, drop_path=rate) for rate in rates], dim)
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = classification_head(len(head_features) * dim, num_classes)
        self.tfts_gamma_1, self.tfts_beta_1 = scale_shift_parameters(dim)
        self.tfts_gamma_2, self.tfts_beta_2 = scale_shift_parameters(dim)

        for part in (self.encoder, self.pos_embed, self.blocks, self.norm):
            part.apply(init_transformer_weights)
        for module in self.blocks.modules():
            if isinstance(module, BottleneckAdapter):
                module.reset_parameters()
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.cls_pos, std=0.02)
        freeze_by_rule(self, "dapt")

    def forward_features(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` -> tokens ``(B, 1 + depth + num_groups, dim)``: cls, the prompts (last block's
        first), the patches."""
        neighborhood, centers = group_points(points, self.num_groups, self.group_size)
        tokens = self.encoder(neighborhood) * self.tfts_gamma_1 + self.tfts_beta_1
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        x = x + torch.cat([self.cls_pos.expand(batch, -1, -1), self.pos_embed(centers)], dim=1)
        return scaled_layer_norm(self.blocks(x), self.norm, self.tfts_gamma_2, self.tfts_beta_2)

    def forward(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` -> logits ``(B, num_classes)``."""
        x = self.forward_features(points)
        prompts, patches = x[:, 1:-self.num_groups], x[:, -self.num_groups:]
        available = {
            "cls": lambda: x[:, 0],
            "prompt_mean": lambda: prompts.mean(dim=1),
            "prompt_max": lambda: prompts.amax(dim=1),
            "patch_max": lambda: patches.amax(dim=1),
            "patch_mean": lambda: patches.mean(dim=1),
        }
        return self.cls_head_finetune(torch.cat([available[name]() for name in self.head_features], dim=-1))
