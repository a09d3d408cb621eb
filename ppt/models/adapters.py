"""Trainable side modules of parameter-efficient fine-tuning: bottleneck adapters (AdaptFormer's
AdaptMLP and DAPT's Dynamic Adapter) and LoRA's low-rank update. Each starts as an exact zero
function, so inserting it leaves a pre-trained model's output unchanged until it is trained."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BottleneckAdapter", "LowRankUpdate"]


class BottleneckAdapter(nn.Module):
    """``up(dropout(act(down(x)))) * scale`` with ``up`` zero-initialised.

    Args:
        dim: input and output channels.
        rank: bottleneck channels.
        dropout: dropout after the activation.
        activation: ``"gelu"`` (DAPT) or ``"relu"`` (AdaptFormer).
        layer_norm: normalise the input with the adapter's own LayerNorm first (DAPT).
        dynamic_scale: per-token scale ``relu(Linear(dim, 1)(x))`` computed from the (normalised) input
            (DAPT's Dynamic Adapter); otherwise the constant ``scale``.
        scale: the constant scale (AdaptFormer: 0.1).

    Parameter names follow DAPT's ``Adapter``: ``adapter_layer_norm_before``, ``scale``, ``down_proj``, ``up_proj``.
    """

    def __init__(self, dim: int, rank: int, *, dropout: float = 0.0, activation: str = "gelu",
                 layer_norm: bool = False, dynamic_scale: bool = False, scale: float = 1.0) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"adapter rank must be >= 1, got {rank}")
        if activation not in ("gelu", "relu"):
            raise ValueError(f"adapter activation must be 'gelu' or 'relu', got {activation!r}")
        self.adapter_layer_norm_before = nn.LayerNorm(dim) if layer_norm else None
        self.scale = nn.Linear(dim, 1) if dynamic_scale else None
        self.fixed_scale = scale
        self.down_proj = nn.Linear(dim, rank)
        self.up_proj = nn.Linear(rank, dim)
        self.activation = activation
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DAPT / AdaptFormer initialisation: Kaiming-uniform down projection and scale, zero biases, zero up projection."""
        nn.init.kaiming_uniform_(self.down_proj.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down_proj.bias)
        nn.init.zeros_(self.up_proj.weight)
        nn.init.zeros_(self.up_proj.bias)
        if self.scale is not None:
            nn.init.kaiming_uniform_(self.scale.weight, a=math.sqrt(5))
            nn.init.zeros_(self.scale.bias)
        if self.adapter_layer_norm_before is not None:
            self.adapter_layer_norm_before.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        if self.adapter_layer_norm_before is not None:
            x = self.adapter_layer_norm_before(x)
        down = self.down_proj(x)
        down = F.gelu(down) if self.activation == "gelu" else F.relu(down)
        up = self.up_proj(F.dropout(down, p=self.dropout, training=self.training))
        return up * (F.relu(self.scale(x)) if self.scale is not None else self.fixed_scale)


class LowRankUpdate(nn.Module):
    """LoRA's update ``lora_up(lora_down(x)) * alpha / rank`` of a frozen linear layer's output
    (``lora_down`` Kaiming-uniform, ``lora_up`` zero)."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.lora_down = nn.Linear(in_features, rank, bias=False)
        self.lora_up = nn.Linear(rank, out_features, bias=False)
        self.scaling = (alpha if alpha is not None else rank) / rank
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.lora_up(self.lora_down(x)) * self.scaling
