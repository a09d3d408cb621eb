"""Point-MAE's part-segmentation model (github.com/Pang-Yatian/Point-MAE, ``segmentation/models/pt.py``,
``get_model``), with the fine-tuning switch of the classifiers: full fine-tuning, the PEFT
baselines and DAPT on the same network.

The official model, module for module and name for name (its checkpoints load by key):

* patches as in the classifier (128 FPS centres x 32 nearest points, mini-PointNet), *no* cls
  token, the centres' positional embedding re-added before every block;
* the outputs of blocks 3, 7 and 11, each through the same final LayerNorm, concatenated per
  patch (3 x 384 = 1152 channels), pooled by max and by mean over the patches;
* the category as a one-hot through ``label_conv`` (Conv1d(16, 64, no bias), BN, LeakyReLU 0.2);
* feature propagation to every input point (``propagation_0``: the 3 nearest centres by squared
  distance, weights ``1 / (d^2 + 1e-8)`` normalised, ``[xyz, interpolated]`` through two
  Conv-BN-ReLU, 1155 -> 1536 -> 1024);
* per point ``[propagated 1024, max 1152, mean 1152, label 64]`` (3392) through Conv-BN-ReLU 512,
  dropout 0.5, Conv-BN-ReLU 256, Conv to the parts; the output is log-probabilities (log_softmax).

27,063,730 parameters for 50 parts. PEFT: ``peft`` picks the method of :mod:`ppt.models.peft`;
the head (``label_conv``, ``propagation_0``, ``convs*``, ``bns*``) trains in every method.
LoRA, AdaptFormer and bitfit work as in the classifier; VPT-deep puts its prompts in front of the
patch tokens (there is no cls token to follow) and drops them after each block. ``peft="dapt"``
builds DAPT's blocks (:class:`ppt.models.dapt.DAPTBlock`: Dynamic Adapter, scale/shift, one
Internal Prompt per block) with the prompts in front of the patches, DAPT's scale/shift after the
patch encoder and after the final norm; the positional embedding stays re-added before every
block (to the patches), as the part-segmentation backbone was trained, where DAPT's classifier adds
it once. DAPT's official code has no part-segmentation model: these placements are ppt's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppt.models.adapters import BottleneckAdapter, LowRankUpdate
from ppt.models.dapt import DAPTBlock
from ppt.models.peft import PEFT_METHODS, PeftModule, freeze_by_rule
from ppt.models.point_transformer import (
    Block,
    PatchEncoder,
    TransformerEncoder,
    group_points,
    init_transformer_weights,
    positional_mlp,
    scale_shift_parameters,
    scaled_layer_norm,
)
from ppt.ops import knn

__all__ = ["PointMAEPartSeg", "FeaturePropagation", "PART_SEG_HEAD", "NUM_CATEGORIES"]

NUM_CATEGORIES = 16
PART_SEG_HEAD = ("label_conv", "propagation_0", "convs1", "convs2", "convs3", "bns1", "bns2")
"""Top-level modules of the head (trainable under every ``peft`` method)."""
FETCH_BLOCKS = (3, 7, 11)
_DEFAULT_RANK = {"lora": 8, "adaptformer": 64, "dapt": 64}
_ADAPTFORMER_SCALE = 0.1


class FeaturePropagation(nn.Module):
    """PointNet++'s feature propagation (``PointNetFeaturePropagation``): features of ``S`` sampled
    points interpolated to ``N`` points from their 3 nearest (inverse squared distance weights),
    concatenated after the points' own features, through Conv1d-BN-ReLU layers."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.mlp_convs = nn.ModuleList()
        self.mlp_bns = nn.ModuleList()
        for out_channels in channels:
            self.mlp_convs.append(nn.Conv1d(in_channels, out_channels, 1))
            self.mlp_bns.append(nn.BatchNorm1d(out_channels))
            in_channels = out_channels

    def forward(self, xyz: Tensor, sampled_xyz: Tensor, features: Tensor, sampled_features: Tensor) -> Tensor:
        """``xyz`` ``(B, N, 3)``, ``sampled_xyz`` ``(B, S, 3)``, ``features`` ``(B, D1, N)``,
        ``sampled_features`` ``(B, D2, S)`` -> ``(B, channels[-1], N)``."""
        if sampled_xyz.shape[1] == 1:
            interpolated = sampled_features.expand(-1, -1, xyz.shape[1])
        else:
            dist2, index = knn(xyz, sampled_xyz, 3)
            weight = 1.0 / (dist2 + 1e-8)
            weight = weight / weight.sum(dim=2, keepdim=True)
            # Index rows of (B, S, C), as the official index_points: the backward then scatters into
            # (B, S, C), where a gather from an expanded (B, C, N, S) view would materialise that size.
            batch = torch.arange(xyz.shape[0], device=xyz.device)[:, None, None]
            gathered = sampled_features.transpose(1, 2)[batch, index]  # (B, N, 3, C)
            interpolated = (gathered * weight[..., None]).sum(dim=2).transpose(1, 2)
        x = torch.cat([features, interpolated], dim=1)
        for conv, norm in zip(self.mlp_convs, self.mlp_bns):
            x = F.relu(norm(conv(x)))
        return x


class PointMAEPartSeg(PeftModule):
    """Point-MAE part segmentation (see the module docstring).

    Args:
        num_classes: parts (ShapeNetPart: 50).
        trans_dim, depth, drop_path_rate, num_heads, group_size, num_group: the transformer and the
            patches (official: 384, 12, 0.1, 6, 32, 128; ``depth`` must exceed 11, the last block read).
        num_categories: object categories of the one-hot label (ShapeNetPart: 16).
        peft: ``"full"`` (the official fine-tuning), ``"linear"`` (head only), ``"bitfit"``, ``"lora"``,
            ``"adaptformer"``, ``"vpt_deep"`` or ``"dapt"``.
        peft_rank: LoRA rank (default 8), AdaptFormer or DAPT adapter bottleneck (default 64).
        prompt_tokens: VPT-deep prompts per block (default 10).
        adapter_dropout: dropout inside DAPT's adapters.
        frozen_norm_stats: keep the running statistics of frozen BatchNorm layers (see :mod:`ppt.models.peft`).
    """

    def __init__(self, num_classes: int = 50, trans_dim: int = 384, depth: int = 12, drop_path_rate: float = 0.1,
                 num_heads: int = 6, group_size: int = 32, num_group: int = 128, *,
                 num_categories: int = NUM_CATEGORIES,
                 peft: str = "full", peft_rank: int | None = None, prompt_tokens: int = 10,
                 adapter_dropout: float = 0.0, frozen_norm_stats: bool = False) -> None:
        super().__init__()
        if peft not in PEFT_METHODS:
            raise ValueError(f"PointMAEPartSeg peft must be one of {PEFT_METHODS}, got {peft!r}")
        if depth <= max(FETCH_BLOCKS):
            raise ValueError(f"PointMAEPartSeg depth must be > {max(FETCH_BLOCKS)} (it reads blocks {FETCH_BLOCKS}), "
                             f"got {depth}")
        if num_classes < 1 or num_categories < 1:
            raise ValueError(f"num_classes and num_categories must be >= 1, got {num_classes}, {num_categories}")
        if peft_rank is not None and peft not in _DEFAULT_RANK:
            raise ValueError(f"peft_rank applies to {sorted(_DEFAULT_RANK)}, not to peft={peft!r}")
        if peft == "vpt_deep" and prompt_tokens < 1:
            raise ValueError(f"vpt_deep needs prompt_tokens >= 1, got {prompt_tokens}")
        self.num_classes, self.num_categories = num_classes, num_categories
        self.num_group, self.group_size = num_group, group_size
        self.peft = peft
        self.frozen_norm_stats = frozen_norm_stats
        rank = peft_rank if peft_rank is not None else _DEFAULT_RANK.get(peft, 0)

        self.encoder = PatchEncoder(trans_dim)
        self.pos_embed = positional_mlp(trans_dim)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        if peft == "dapt":
            blocks: list[nn.Module] = [DAPTBlock(trans_dim, num_heads, rank=rank, adapter_dropout=adapter_dropout,
                                                 drop_path=rate, prompt_position=0) for rate in rates]
            self.tfts_gamma_1, self.tfts_beta_1 = scale_shift_parameters(trans_dim)
            self.tfts_gamma_2, self.tfts_beta_2 = scale_shift_parameters(trans_dim)
        else:
            blocks = [Block(trans_dim, num_heads, drop_path=rate,
                            qkv_update=LowRankUpdate(trans_dim, 3 * trans_dim, rank) if peft == "lora" else None,
                            adapter=BottleneckAdapter(trans_dim, rank, activation="relu", scale=_ADAPTFORMER_SCALE)
                            if peft == "adaptformer" else None)
                      for rate in rates]
        self.blocks = TransformerEncoder(blocks, trans_dim, prompt_tokens=prompt_tokens if peft == "vpt_deep" else 0)
        self.norm = nn.LayerNorm(trans_dim)

        self.label_conv = nn.Sequential(nn.Conv1d(num_categories, 64, 1, bias=False), nn.BatchNorm1d(64),
                                        nn.LeakyReLU(0.2))
        fetched = len(FETCH_BLOCKS) * trans_dim
        self.propagation_0 = FeaturePropagation(fetched + 3, (trans_dim * 4, 1024))
        self.convs1 = nn.Conv1d(1024 + 2 * fetched + 64, 512, 1)
        self.dp1 = nn.Dropout(0.5)
        self.convs2 = nn.Conv1d(512, 256, 1)
        self.convs3 = nn.Conv1d(256, num_classes, 1)
        self.bns1 = nn.BatchNorm1d(512)
        self.bns2 = nn.BatchNorm1d(256)

        # As in the classifier: the transformer gets Point-MAE's initialisation (replaced by a
        # checkpoint), the head keeps PyTorch's defaults as in the official code.
        for part in (self.encoder, self.pos_embed, self.blocks, self.norm):
            part.apply(init_transformer_weights)
        for module in self.blocks.modules():
            if isinstance(module, (BottleneckAdapter, LowRankUpdate)):
                module.reset_parameters()
        freeze_by_rule(self, peft, head=PART_SEG_HEAD)

    def patch_features(self, xyz: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, N, 3)`` -> the normalised features of blocks 3, 7 and 11 concatenated per patch
        ``(B, num_group, 3 * trans_dim)`` and the patch centres ``(B, num_group, 3)``."""
        neighborhood, centers = group_points(xyz, self.num_group, self.group_size)
        x = self.encoder(neighborhood)
        dapt = self.peft == "dapt"
        if dapt:
            x = x * self.tfts_gamma_1 + self.tfts_beta_1
        pos = self.pos_embed(centers)
        prompts = self.blocks.prompt_tokens
        fetched = []
        for index, block in enumerate(self.blocks.blocks):
            # the patches are always the last num_group tokens; prompts (DAPT's grow by one per block) precede them
            x = torch.cat([x[:, :-self.num_group], x[:, -self.num_group:] + pos], dim=1)
            if prompts is not None:
                x = block(torch.cat([prompts[index].expand(x.shape[0], -1, -1), x], dim=1))[:, prompts.shape[1]:]
            else:
                x = block(x)
            if index in FETCH_BLOCKS:
                patches = x[:, -self.num_group:]
                fetched.append(scaled_layer_norm(patches, self.norm, self.tfts_gamma_2, self.tfts_beta_2) if dapt
                               else self.norm(patches))
        return torch.cat(fetched, dim=-1), centers

    def forward(self, xyz: Tensor, cls_label: Tensor) -> Tensor:
        """``xyz`` ``(B, N, 3)`` and the category of each cloud ``cls_label`` ``(B,)`` int64 in
        ``[0, num_categories)`` -> per-point part log-probabilities ``(B, N, num_classes)``."""
        if cls_label.shape != xyz.shape[:1] or cls_label.dtype != torch.int64:
            raise ValueError(f"cls_label must be int64 of shape ({xyz.shape[0]},), got {cls_label.dtype} "
                             f"{tuple(cls_label.shape)}")
        if cls_label.numel() and (int(cls_label.min()) < 0 or int(cls_label.max()) >= self.num_categories):
            raise ValueError(f"cls_label must lie in [0, {self.num_categories})")
        batch, points, _ = xyz.shape
        features, centers = self.patch_features(xyz)
        features = features.transpose(1, 2)  # (B, 1152, G)
        one_hot = F.one_hot(cls_label, self.num_categories).to(features.dtype)[:, :, None]
        global_features = torch.cat([features.amax(dim=2), features.mean(dim=2), self.label_conv(one_hot)[:, :, 0]],
                                    dim=1)
        propagated = self.propagation_0(xyz, centers, xyz.transpose(1, 2), features)
        x = torch.cat([propagated, global_features[:, :, None].expand(-1, -1, points)], dim=1)
        x = self.dp1(F.relu(self.bns1(self.convs1(x))))
        x = F.relu(self.bns2(self.convs2(x)))
        return F.log_softmax(self.convs3(x), dim=1).transpose(1, 2)
