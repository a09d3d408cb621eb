"""Point Prompt Training (PPT; Wu et al., CVPR 2024): one SpUNet (or Point Transformer V3) trained on
several datasets.

Each dataset (condition) has a learned prompt, ``embedding_table`` (``nn.Embedding``, 256-d), that
adapts the shared backbone; the default adapter is prompt-driven normalization (every norm of the
SpUNet is a :class:`ppt.nn.PDNorm` with per-condition statistics, modulated by the prompt). The
label spaces of the datasets are aligned by a language-guided head: point features are projected
to the text space, L2-normalised and compared by cosine similarity (x logit scale 100) with the
text embeddings of the condition's class names, so logits are always over that condition's
classes in its native order.

Module and buffer names follow Pointcept's ``PPT-v1m1`` (``backbone.*`` = ``SpUNet-v1m3``,
``embedding_table``, ``proj_head``, ``class_embedding``, ``logit_scale``) and ``PPT-v1m2``
(``seg_heads.{i}``), so ``load_weights(model, checkpoint, format="pointcept")`` loads their
checkpoints (see :meth:`PointPromptTraining.convert_pointcept_state_dict`). docs/ppt.md lists
where this implementation differs from Pointcept's and why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppt.models.conditions import Condition, condition_index
from ppt.models.point_transformer_v3 import PointTransformerV3
from ppt.models.spunet import BasicBlock, SpUNet
from ppt.sparse import SparseTensor

__all__ = ["PointPromptTraining", "restricted_cross_entropy", "check_restricted_target", "HEADS", "ADAPTERS", "POINTCEPT_CLASS_NAMES",
           "POINTCEPT_BACKBONE_CONDITIONS", "POINTCEPT_PROMPT_CONDITIONS"]

HEADS = ("lang", "unionized", "decoupled")
BACKBONES = ("spunet", "ptv3")
ADAPTERS = ("pdnorm", "add", "cross_attn", "none")

# The union label space of Pointcept's PPT-v1m1 configs (``class_name``): the rows of its
# ``class_embedding`` buffer, which loading maps onto this model's classes by name.
POINTCEPT_CLASS_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "bookcase", "picture",
    "counter", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "ceiling", "refrigerator", "television",
    "shower curtain", "nightstand", "toilet", "sink", "lamp", "bathtub", "garbagebin", "board", "beam", "column",
    "clutter", "otherstructure", "otherfurniture", "otherprop",
)
# The condition order of the SpUNet-v1m3 backbone in Pointcept's PPT configs (its PDBatchNorm rows
# ``bns.{i}``) and of the PPT level (PPT-v1m1/-v1m2 ``conditions``: the rows of ``embedding_table``
# and the ``seg_heads``), which differ.
POINTCEPT_BACKBONE_CONDITIONS = ("ScanNet", "S3DIS", "Structured3D")
POINTCEPT_PROMPT_CONDITIONS = ("Structured3D", "ScanNet", "S3DIS")



def check_restricted_target(logits: Tensor, target: Tensor, allowed: Tensor, ignore_index: int, caller: str) -> Tensor:
    """The ``(N,)`` bool mask of labelled points, after checking ``logits`` ``(N, C)``, int64 ``target``
    ``(N,)`` and bool ``allowed`` ``(C,)`` or ``(N, C)``: every labelled target must lie in ``[0, C)``
    and be among its point's allowed classes.

    Raises:
        ValueError: naming ``caller`` and the argument that does not fit.
    """
    if logits.dim() != 2 or target.shape != logits.shape[:1] or target.dtype != torch.int64:
        raise ValueError(f"{caller}: expected logits (N, C) and int64 target (N,), got "
                         f"{tuple(logits.shape)} and {target.dtype} {tuple(target.shape)}")
    if allowed.dtype != torch.bool or allowed.shape not in (logits.shape, logits.shape[1:]):
        raise ValueError(f"{caller}: allowed must be bool of shape ({logits.shape[1]},) or "
                         f"{tuple(logits.shape)}, got {allowed.dtype} {tuple(allowed.shape)}")
    labelled = target != ignore_index
    if bool(labelled.any()):
        classes = target[labelled]
        if int(classes.min()) < 0 or int(classes.max()) >= logits.shape[1]:
            raise ValueError(f"{caller}: targets must be in [0, {logits.shape[1]}) or {ignore_index}, got "
                             f"values in [{int(classes.min())}, {int(classes.max())}]")
        if not bool(allowed.expand_as(logits)[labelled].gather(1, classes[:, None]).all()):
            raise ValueError(f"{caller}: a target class is not among its dataset's classes")
    return labelled


def restricted_cross_entropy(logits: Tensor, target: Tensor, allowed: Tensor, ignore_index: int = -1, *,
                             weight: Tensor | None = None, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy over the ``allowed`` classes only: the softmax of each point runs over
    the classes its dataset has, so classes of other datasets neither compete nor get gradient.

    Args:
        logits: ``(N, C)`` scores (``-inf`` where a class is not allowed is fine).
        target: ``(N,)`` int64 classes in ``[0, C)``, or ``ignore_index``.
        allowed: ``(C,)`` bool (one dataset) or ``(N, C)`` bool (per point).
        ignore_index: label of points left out of the loss.
        weight: ``(C,)`` class weights: torch's weighted mean, ``sum w[y] * ce / sum w[y]``.
        label_smoothing: torch's, for a loss over all classes only (every class allowed).

    Returns:
        The mean over the labelled points; 0 (connected to the graph) when there is none.

    Raises:
        ValueError: a target outside ``[0, C)`` or not allowed for its point, a ``weight`` that is not
            ``(C,)``, label smoothing with classes masked out.
    """
    labelled = check_restricted_target(logits, target, allowed, ignore_index, "restricted_cross_entropy")
    if weight is not None and weight.shape != logits.shape[1:]:
        raise ValueError(f"restricted_cross_entropy: weight must have shape ({logits.shape[1]},), got "
                         f"{tuple(weight.shape)}")
    allowed_rows = allowed.expand_as(logits)
    if label_smoothing and not bool(allowed_rows.all()):
        raise ValueError("restricted_cross_entropy: label_smoothing spreads targets over every class; it needs "
                         "every class allowed")
    if not bool(labelled.any()):
        # nothing to learn from, but keep the graph (and DDP) connected; masked -inf scores would make it NaN
        return logits.masked_fill(~allowed_rows, 0.0).sum() * 0.0
    return F.cross_entropy(logits.masked_fill(~allowed_rows, float("-inf")), target, weight=weight,
                           ignore_index=ignore_index, label_smoothing=label_smoothing)


class PromptAdd(nn.Module):
    """``add`` adapter: a Linear of the condition's prompt added to every point's features."""

    def __init__(self, channels: int, context_channels: int) -> None:
        super().__init__()
        self.output = nn.Linear(context_channels, channels)

    def forward(self, features: Tensor, point_condition: Tensor | int, prompts: Tensor) -> Tensor:
        shift = self.output(prompts[:, 0])  # (conditions, channels)
        return features + shift[point_condition].to(features.dtype)


class PromptCrossAttention(nn.Module):
    """``cross_attn`` adapter: every point attends to its condition's prompt tokens; the result,
    through an output Linear, is added to the features (residual)."""

    def __init__(self, channels: int, context_channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"PromptCrossAttention: {channels} channels do not split into {heads} heads")
        self.heads = heads
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(context_channels, channels)
        self.value = nn.Linear(context_channels, channels)
        self.output = nn.Linear(channels, channels)

    def forward(self, features: Tensor, point_condition: Tensor | int, prompts: Tensor) -> Tensor:
        conditions, tokens, _ = prompts.shape
        if not isinstance(point_condition, Tensor):
            prompts = prompts[point_condition:point_condition + 1]  # one condition: its tokens only
        rows, channels = features.shape
        head_dim = channels // self.heads
        query = self.query(features).view(rows, self.heads, head_dim)
        key = self.key(prompts).reshape(-1, self.heads, head_dim).to(query.dtype)
        value = self.value(prompts).reshape(-1, self.heads, head_dim).to(query.dtype)
        scores = torch.einsum("nhd,mhd->nhm", query, key) / math.sqrt(head_dim)
        if isinstance(point_condition, Tensor):
            token_condition = torch.arange(conditions, device=features.device).repeat_interleave(tokens)
            foreign = token_condition[None, :] != point_condition[:, None]  # tokens of other conditions
            scores = scores.masked_fill(foreign[:, None, :], float("-inf"))
        attended = torch.einsum("nhm,mhd->nhd", scores.softmax(-1), value).reshape(rows, channels)
        return features + self.output(attended)


class PointPromptTraining(nn.Module):
    """Multi-dataset semantic segmentation with domain prompts and language-guided alignment.

    Args:
        conditions: the datasets, in the order of the prompt table and of per-point condition ids.
        class_names: each condition's class names in its native label order (label k = name k).
        in_channels: input feature width of the SpUNet.
        head: ``"lang"`` (cosine similarity with text embeddings of the class names, x
            ``logit_scale``), ``"unionized"`` (one Linear over the union of the classes, the
            logits of a condition are its columns), ``"decoupled"`` (one Linear per condition).
        adapter: how the prompt adapts the backbone: ``"pdnorm"`` (PDNorm everywhere),
            ``"add"`` (a Linear of the prompt added after every residual block, shared BN),
            ``"cross_attn"`` (points attend to ``prompt_tokens`` prompt tokens after every block,
            shared BN) or ``"none"`` (shared BN, no prompt: naive joint training).
        text: ``head="lang"`` only: a provider name for :func:`ppt.text.embed_class_names`
            (``"clip"``, PPT's choice, or ``"minilm"``), a :class:`ppt.text.TextTable` holding
            every class name, or a mapping condition -> ``(K, D)`` table (tensor or TextTable) in
            that condition's class order. Rows are L2-normalised here.
        context_channels: width of a prompt (token).
        zero_init: zero the last layer of every prompt-driven part (PDNorm modulation, adapter
            output), so training starts from the prompt-free model.
        prompt_lr_scale: learning-rate factor of the prompt-related parameters in
            :meth:`parameter_groups` (PPT: 0.1; 1.0 disables it).
        logit_scale: the ``lang`` head's temperature (CLIP's, 100).
        prompt_tokens: tokens per condition of the ``cross_attn`` adapter.
        attention_heads: heads of the ``cross_attn`` adapter.
        backbone_mode: ``forward`` returns the ``(N, channels[-1])`` backbone features; no head is
            built and ``class_names`` / ``text`` may be None.
        base_channels, channels, layers: the SpUNet's widths and depths (default SpUNet-S).
        backbone: ``"spunet"`` (Pointcept's SpUNet-v1m3) or ``"ptv3"`` (:class:`PointTransformerV3`
            as Pointcept's PPT + PT-v3m1 configs build it: with ``adapter="pdnorm"`` its batch and
            layer norms are per-condition PDNorms, not modulated unless ``backbone_kwargs`` sets
            ``pdnorm_adaptive=True``). The ``add`` / ``cross_attn`` adapters need the SpUNet.
        backbone_kwargs: further :class:`PointTransformerV3` arguments (``backbone="ptv3"`` only;
            the SpUNet takes ``base_channels``, ``channels``, ``layers``).
    """

    def __init__(self, conditions: Sequence[str] = ("Structured3D", "ScanNet", "S3DIS"),
                 class_names: Mapping[str, Sequence[str]] | None = None, in_channels: int = 6, head: str = "lang",
                 adapter: str = "pdnorm", text=None, context_channels: int = 256, zero_init: bool = True,
                 prompt_lr_scale: float = 0.1, logit_scale: float = 100.0, prompt_tokens: int = 8,
                 attention_heads: int = 4, backbone_mode: bool = False, base_channels: int = 32,
                 channels: Sequence[int] = (32, 64, 128, 256, 256, 128, 96, 96),
                 layers: Sequence[int] = (2, 3, 4, 6, 2, 2, 2, 2), backbone: str = "spunet",
                 backbone_kwargs: Mapping | None = None) -> None:
        super().__init__()
        if isinstance(conditions, str) or len(conditions) == 0 or len(set(conditions)) != len(conditions):
            raise ValueError(f"PointPromptTraining: conditions must be distinct dataset names, got {conditions!r}")
        if head not in HEADS:
            raise ValueError(f"PointPromptTraining: head must be one of {HEADS}, got {head!r}")
        if adapter not in ADAPTERS:
            raise ValueError(f"PointPromptTraining: adapter must be one of {ADAPTERS}, got {adapter!r}")
        if backbone not in BACKBONES:
            raise ValueError(f"PointPromptTraining: backbone must be one of {BACKBONES}, got {backbone!r}")
        if backbone == "ptv3" and adapter in ("add", "cross_attn"):
            raise ValueError(f"PointPromptTraining: adapter={adapter!r} attaches to SpUNet blocks; with "
                             "backbone='ptv3' use 'pdnorm' or 'none'")
        if backbone_kwargs and backbone != "ptv3":
            raise ValueError("PointPromptTraining: backbone_kwargs are PointTransformerV3 arguments (backbone='ptv3'); "
                             "the SpUNet takes base_channels, channels and layers")
        if not prompt_lr_scale > 0:
            raise ValueError(f"PointPromptTraining: prompt_lr_scale must be positive, got {prompt_lr_scale}")
        self.conditions = tuple(conditions)
        self.head, self.adapter, self.backbone_mode = head, adapter, backbone_mode
        self.zero_init, self.prompt_lr_scale = zero_init, float(prompt_lr_scale)
        self.context_channels = context_channels

        self.backbone_name = backbone
        if backbone == "ptv3":
            pdnorm = adapter == "pdnorm"
            self.backbone = PointTransformerV3(**{
                "in_channels": in_channels, "num_classes": 0, "pdnorm_bn": pdnorm, "pdnorm_ln": pdnorm,
                "pdnorm_conditions": self.conditions, "context_channels": context_channels, **(backbone_kwargs or {})})
            if zero_init:  # start from the unmodulated norms, as PDNorm's zero_init does for the SpUNet
                for name, parameter in self.backbone.named_parameters():
                    if ".modulation." in name:
                        nn.init.zeros_(parameter)
        else:
            self.backbone = SpUNet(in_channels=in_channels, num_classes=0, base_channels=base_channels,
                                   channels=channels, layers=layers, norm="pdnorm" if adapter == "pdnorm" else "bn",
                                   conditions=self.conditions, context_channels=context_channels, zero_init=zero_init)
        self.prompt_tokens = prompt_tokens if adapter == "cross_attn" else 1
        if adapter != "none":
            self.embedding_table = nn.Embedding(len(self.conditions), self.prompt_tokens * context_channels)
        self.adapters = nn.ModuleDict()
        if adapter in ("add", "cross_attn"):
            self._attach_adapters(attention_heads)

        self.class_names: dict[str, tuple[str, ...]] = {}
        self.text_provenance: dict = {}
        if not backbone_mode:
            self._build_head(class_names, text, logit_scale)

    # ---- construction

    def _attach_adapters(self, attention_heads: int) -> None:
        """One adapter after every residual block, applied by a forward hook so that the backbone
        keeps SpUNet's module names (and so Pointcept's checkpoint keys)."""
        for name, block in self.backbone.named_modules():
            if not isinstance(block, BasicBlock):
                continue
            width = block.conv2.out_channels
            if self.adapter == "add":
                adapter = PromptAdd(width, self.context_channels)
            else:
                adapter = PromptCrossAttention(width, self.context_channels, attention_heads)
            for layer in adapter.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.trunc_normal_(layer.weight, std=0.02)
                    nn.init.zeros_(layer.bias)
            if self.zero_init:
                nn.init.zeros_(adapter.output.weight)
                nn.init.zeros_(adapter.output.bias)
            key = name.replace(".", "_")
            self.adapters[key] = adapter
            block.register_forward_hook(partial(self._adapt_block, key))

    def _build_head(self, class_names: Mapping[str, Sequence[str]] | None, text, logit_scale: float) -> None:
        if class_names is None or set(class_names) != set(self.conditions):
            given = None if class_names is None else sorted(class_names)
            raise ValueError(f"PointPromptTraining: class_names must map every condition {self.conditions} to its "
                             f"class names, got keys {given}")
        for condition in self.conditions:
            names = tuple(class_names[condition])
            if not names or len(set(names)) != len(names):
                raise ValueError(f"PointPromptTraining: class_names[{condition!r}] must be distinct names, got {names}")
            self.class_names[condition] = names
        self.union_names = tuple(dict.fromkeys(name for names in self.class_names.values() for name in names))
        # columns[c, k]: where class k of condition c sits among the head's outputs (padded to the
        # largest class count; column_valid marks the real ones).
        most = max(len(names) for names in self.class_names.values())
        columns = torch.zeros(len(self.conditions), most, dtype=torch.long)
        valid = torch.zeros(len(self.conditions), most, dtype=torch.bool)
        offset = 0
        for c, condition in enumerate(self.conditions):
            names = self.class_names[condition]
            if self.head == "decoupled":
                columns[c, :len(names)] = torch.arange(offset, offset + len(names))
                offset += len(names)
            else:
                columns[c, :len(names)] = torch.tensor([self.union_names.index(name) for name in names])
            valid[c, :len(names)] = True
        self.register_buffer("columns", columns, persistent=False)
        self.register_buffer("column_valid", valid, persistent=False)

        features = self.backbone.out_channels
        if self.head == "lang":
            table = self._text_table(text)
            self.register_buffer("class_embedding", table)
            self.register_buffer("logit_scale", torch.tensor(math.log(logit_scale)))  # stored as log, as CLIP
            self.proj_head = nn.Linear(features, table.shape[1])
        elif self.head == "unionized":
            self.seg_head = nn.Linear(features, len(self.union_names))
        else:
            self.seg_heads = nn.ModuleList(nn.Linear(features, len(self.class_names[c])) for c in self.conditions)

    def _text_table(self, text) -> Tensor:
        """The ``(len(union_names), D)`` unit-row table of the union of the class names."""
        from ppt.text import TextTable, embed_class_names

        if text is None:
            raise ValueError("PointPromptTraining(head='lang') needs text: a provider name ('clip', 'minilm'), a "
                             "ppt.text.TextTable or a mapping condition -> (classes, dim) table")
        if isinstance(text, str):
            text = embed_class_names(self.union_names, text)
        if isinstance(text, TextTable):
            table = text.select(self.union_names)
            self.text_provenance = dict(table.provenance)
            return table.embeddings.float()
        if not isinstance(text, Mapping) or set(text) != set(self.conditions):
            raise ValueError(f"PointPromptTraining: text must be a provider name, a TextTable or a mapping of every "
                             f"condition {self.conditions} to its table")
        rows: dict[str, Tensor] = {}
        for condition in self.conditions:
            entry = text[condition]
            names = self.class_names[condition]
            table = entry.select(names).embeddings if isinstance(entry, TextTable) else entry  # rows by name
            if not isinstance(table, Tensor) or table.dim() != 2 or table.shape[0] != len(names):
                shape = tuple(table.shape) if isinstance(table, Tensor) else type(table).__name__
                raise ValueError(f"PointPromptTraining: text[{condition!r}] must be a ({len(names)}, D) table, got {shape}")
            table = F.normalize(table.detach().float().cpu(), dim=1)
            for name, row in zip(names, table):
                if name in rows and not torch.allclose(rows[name], row, atol=1e-5):
                    raise ValueError(f"PointPromptTraining: text tables disagree on the embedding of {name!r}")
                rows.setdefault(name, row)
            if isinstance(entry, TextTable):
                self.text_provenance[condition] = dict(entry.provenance)
        if len({row.shape[0] for row in rows.values()}) != 1:
            raise ValueError("PointPromptTraining: text tables must share one embedding width")
        return torch.stack([rows[name] for name in self.union_names])

    # ---- forward

    def _condition(self, condition: Condition, rows: int) -> int | Tensor:
        """A condition index, or an ``(rows,)`` int64 tensor of them (validated)."""
        return condition_index(condition, self.conditions, rows, "PointPromptTraining")
        if not isinstance(condition, Tensor) or condition.dtype != torch.int64 or condition.shape != (rows,):
            got = f"{condition.dtype} {tuple(condition.shape)}" if isinstance(condition, Tensor) else type(condition).__name__
            raise ValueError(f"PointPromptTraining: condition must be a name, an index or an int64 tensor of shape "
                             f"({rows},), got {got}")
        if condition.numel() and (int(condition.min()) < 0 or int(condition.max()) >= len(self.conditions)):
            raise ValueError(f"PointPromptTraining: condition ids must be in [0, {len(self.conditions)})")
        return condition

    def _context(self) -> Tensor | None:
        """What the backbone passes to its norms and blocks: the prompts of every condition,
        ``(S, context)`` for PDNorm, ``(S, tokens, context)`` for the block adapters."""
        if self.adapter == "none":
            return None
        prompts = self.embedding_table.weight
        if self.adapter == "pdnorm":
            return prompts
        return prompts.view(len(self.conditions), self.prompt_tokens, self.context_channels)

    def _adapt_block(self, key: str, block: nn.Module, inputs: tuple, output: SparseTensor) -> SparseTensor:
        _, scene_condition, prompts = inputs
        if isinstance(scene_condition, Tensor):  # per scene -> per point
            point_condition = scene_condition[output.indices[:, 0].long()]
        else:
            point_condition = scene_condition
        return output.replace_feature(self.adapters[key](output.features, point_condition, prompts))

    def forward_features(self, x: SparseTensor, condition: Condition) -> Tensor:
        """``(N, channels[-1])`` backbone features of ``x`` under ``condition``."""
        condition = self._condition(condition, x.features.shape[0])
        return self.backbone(x, None if self.adapter == "none" else condition, self._context())

    def forward(self, x: SparseTensor, condition: Condition) -> Tensor:
        """Per-point logits over the condition's classes, in its native order.

        Args:
            x: the input ``SparseTensor``.
            condition: the dataset of the whole batch (a name or index), or an ``(N,)`` int64
                condition id per point (a mixed batch; constant within each scene).

        Returns:
            ``(N, K)`` logits for one condition with ``K`` classes. For a mixed batch ``(N, Kmax)``
            (``Kmax`` the largest class count) where column ``k`` of a point is class ``k`` of its
            condition and columns past its class count are ``-inf``. In ``backbone_mode`` the
            ``(N, channels[-1])`` features.
        """
        condition = self._condition(condition, x.features.shape[0])
        features = self.backbone(x, None if self.adapter == "none" else condition, self._context())
        if self.backbone_mode:
            return features
        if isinstance(condition, int):
            return self._condition_logits(features, condition)
        scores = self._all_logits(features)
        logits = scores.gather(1, self.columns[condition])
        return logits.masked_fill(~self.column_valid[condition], float("-inf"))

    def _condition_logits(self, features: Tensor, condition: int) -> Tensor:
        columns = self.columns[condition, :len(self.class_names[self.conditions[condition]])]
        if self.head == "lang":
            return self._text_logits(features, self.class_embedding[columns])
        if self.head == "unionized":
            return F.linear(features, self.seg_head.weight[columns], self.seg_head.bias[columns])
        return self.seg_heads[condition](features)

    def _all_logits(self, features: Tensor) -> Tensor:
        """Scores of every head output (the union's classes; for ``decoupled`` every head's)."""
        if self.head == "lang":
            return self._text_logits(features, self.class_embedding)
        if self.head == "unionized":
            return self.seg_head(features)
        return torch.cat([head(features) for head in self.seg_heads], dim=1)

    def _text_logits(self, features: Tensor, text: Tensor) -> Tensor:
        """``logit_scale`` x the cosine similarity of each point's projection ``u = W f + b``
        (``proj_head``) with the unit rows of ``text``: ``F.normalize(proj_head(f)) @ text.T``,
        evaluated in the backbone's width ``C`` instead of the text width ``D``.

        ``u·t = f·(Wᵀt) + b·t`` and ``|u|² = fᵀ(WᵀW)f + 2 (Wᵀb)·f + |b|²``, so no ``(N, D)``
        projection is formed: for SpUNet's C = 96 and CLIP's D = 512 about 5x fewer FLOPs per
        point, and none of the N x D activations the normalisation's backward otherwise keeps
        and sweeps (they were most of PPT's step time over plain SpUNet). The squared norm is a
        sum of non-negative terms and a cross term bounded by them; it is formed in float32 (in
        float64 for float64 features), also under autocast, as F.normalize's norm is.
        """
        weight, bias = self.proj_head.weight, self.proj_head.bias
        text = text.to(weight.dtype)
        scores = F.linear(features, text @ weight, text @ bias)
        precise = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            f, weight, bias = features.to(precise), weight.to(precise), bias.to(precise)
            squared_norm = ((f @ (weight.t() @ weight)) * f).sum(1) + f @ (2 * weight.t() @ bias) + bias @ bias
            # F.normalize's max(|u|, 1e-12)
            norm = squared_norm.clamp_min(0).sqrt().clamp_min(1e-12)
        return scores / norm[:, None].to(scores.dtype) * self.logit_scale.exp()

    # ---- training helpers

    def loss(self, logits: Tensor, segment: Tensor, condition: Condition, ignore_index: int = -1) -> Tensor:
        """Cross-entropy of ``forward``'s logits over each point's own dataset classes
        (:func:`restricted_cross_entropy`); ``segment`` holds native labels, ``ignore_index`` = none."""
        if self.backbone_mode:
            raise RuntimeError("PointPromptTraining.loss: a backbone_mode model has no head")
        condition = self._condition(condition, logits.shape[0])
        if isinstance(condition, Tensor):
            if logits.shape[1:] != self.column_valid.shape[1:]:
                raise ValueError(f"PointPromptTraining.loss: a mixed batch needs logits ({condition.shape[0]}, "
                                 f"{self.column_valid.shape[1]}), got {tuple(logits.shape)}")
            allowed = self.column_valid[condition]
        else:
            index = condition
            classes = len(self.class_names[self.conditions[index]])
            if logits.dim() != 2 or logits.shape[1] != classes:
                raise ValueError(f"PointPromptTraining.loss: logits have shape {tuple(logits.shape)}, condition "
                                 f"{self.conditions[index]!r} has {classes} classes")
            allowed = torch.ones(classes, dtype=torch.bool, device=logits.device)
        return restricted_cross_entropy(logits, segment, allowed, ignore_index)

    def prompt_parameter_names(self) -> list[str]:
        """Names of the prompt-related parameters: the prompts, PDNorm's modulation, the adapters."""
        pattern = re.compile(r"^embedding_table\.|\.modulation\.|^adapters\.")
        return [name for name, _ in self.named_parameters() if pattern.search(name)]

    def parameter_groups(self) -> list[dict]:
        """Optimizer parameter groups: ``{"name", "params", "lr_scale"}``, the prompt-related
        parameters with ``lr_scale = prompt_lr_scale`` (PPT: 0.1), the rest with 1.0. Multiply
        each group's learning rate by its ``lr_scale``; frozen parameters are left out."""
        prompt = set(self.prompt_parameter_names())
        groups = {"prompt": [], "base": []}
        for name, parameter in self.named_parameters():
            if parameter.requires_grad:
                groups["prompt" if name in prompt else "base"].append(parameter)
        return [{"name": "base", "params": groups["base"], "lr_scale": 1.0},
                {"name": "prompt", "params": groups["prompt"], "lr_scale": self.prompt_lr_scale}]

    def checkpoint_metadata(self) -> dict:
        """What a checkpoint needs besides the weights (JSON-able): conditions, class names,
        head, adapter and the text tables' provenance."""
        return {"conditions": list(self.conditions), "class_names": {c: list(n) for c, n in self.class_names.items()},
                "head": self.head, "adapter": self.adapter, "text": self.text_provenance}

    # ---- Pointcept checkpoints

    def convert_pointcept_state_dict(self, state_dict: Mapping[str, Tensor],
                                     backbone_conditions: Sequence[str] | None = None,
                                     class_names: Sequence[str] = POINTCEPT_CLASS_NAMES,
                                     prompt_conditions: Sequence[str] | None = None) -> dict[str, Tensor]:
        """A Pointcept ``PPT-v1m1`` / ``PPT-v1m2`` state dict in this model's names, every
        per-condition row matched to this model's ``conditions`` by dataset name.

        Args:
            state_dict: the checkpoint's ``state_dict`` (``module.`` already removed).
            backbone_conditions: the condition order of the checkpoint's ``SpUNet-v1m3``
                (``backbone.conditions`` of its config), the order of its ``bns.{i}`` rows (of a
                ``PT-v3m1``: ``pdnorm_conditions``, the order of its ``norm.{i}`` rows).
                Default: Pointcept's configs' order (:data:`POINTCEPT_BACKBONE_CONDITIONS`) when
                this model has exactly those conditions, else this model's order.
            class_names: the names of the checkpoint's ``class_embedding`` rows (its config's
                ``class_name``); rows are matched to this model's classes by name, so the
                checkpoint's ``valid_index`` is not needed (nor its scrambled S3DIS order).
            prompt_conditions: the condition order of the PPT level (``conditions`` of the
                PPT-v1m1/-v1m2 config), the order of the ``embedding_table`` rows and of the
                ``seg_heads.{i}``. Default: Pointcept's (:data:`POINTCEPT_PROMPT_CONDITIONS`)
                when this model has exactly those conditions, else this model's order.

        Raises:
            ValueError: a condition list that is not a reordering of this model's conditions, or
                that does not fit the number of the checkpoint's rows.
        """
        backbone_order = self._checkpoint_rows(backbone_conditions, POINTCEPT_BACKBONE_CONDITIONS, "backbone_conditions")
        prompt_order = self._checkpoint_rows(prompt_conditions, POINTCEPT_PROMPT_CONDITIONS, "prompt_conditions")
        backbone = {key[len("backbone."):]: value for key, value in state_dict.items() if key.startswith("backbone.")}
        converted = {}
        head_row = re.compile(r"^seg_heads\.(\d+)\.")
        if self.backbone_name == "ptv3":  # PTv3's PDNorm rows: <norm>.norm.{i}.<tensor>
            row, template = re.compile(r"\.norm\.(\d+)\.(?=[a-z_]+$)"), ".norm.{}."
            backbone = PointTransformerV3.convert_pointcept_state_dict(backbone)
            if not self.backbone.pdnorm:
                row = re.compile(r"^$")  # no condition rows to renumber
        else:
            row, template = re.compile(r"\.bns\.(\d+)\."), ".bns.{}."
            backbone = SpUNet.convert_pointcept_state_dict(backbone)
        for key, value in backbone.items():
            converted["backbone." + self._renumber(row, key, backbone_order, "backbone_conditions", template)] = value
        for key, value in state_dict.items():
            if key.startswith("backbone."):
                continue
            if key == "embedding_table.weight":
                if value.dim() != 2 or value.shape[0] != len(prompt_order):
                    raise ValueError(f"embedding_table.weight of the checkpoint has shape {tuple(value.shape)}, not "
                                     f"one row per prompt_conditions {prompt_order} (pass the config's conditions)")
                value = value[[prompt_order.index(name) for name in self.conditions]]
            converted[self._renumber(head_row, key, prompt_order, "prompt_conditions", "seg_heads.{}.")] = value
        if "class_embedding" in converted and hasattr(self, "class_embedding"):
            converted["class_embedding"] = self._class_rows_by_name(converted["class_embedding"], tuple(class_names))
        return converted

    def _checkpoint_rows(self, given: Sequence[str] | None, pointcept: tuple[str, ...], argument: str) -> tuple[str, ...]:
        """The condition names of a checkpoint's rows: ``given``, else Pointcept's order for a
        model of Pointcept's conditions, else this model's order."""
        if given is None:
            given = pointcept if set(self.conditions) == set(pointcept) else self.conditions
        if isinstance(given, str) or sorted(given) != sorted(self.conditions):
            raise ValueError(f"{argument} {given!r} are not a reordering of this model's conditions {self.conditions}")
        return tuple(given)

    def _renumber(self, pattern: re.Pattern, key: str, order: tuple[str, ...], argument: str, template: str) -> str:
        """``key`` with the checkpoint's row number (``pattern``'s group) replaced by the row of the
        same condition in this model."""
        match = pattern.search(key)
        if match is None:
            return key
        row = int(match[1])
        if row >= len(order):
            raise ValueError(f"{key}: the checkpoint has a row {row} but {argument} {order} name {len(order)} "
                             "(pass the config's conditions)")
        return key[:match.start()] + template.format(self.conditions.index(order[row])) + key[match.end():]

    def _class_rows_by_name(self, table: Tensor, names: tuple[str, ...]) -> Tensor:
        if table.dim() != 2 or table.shape[0] != len(names):
            raise ValueError(f"class_embedding of the checkpoint has shape {tuple(table.shape)}, but {len(names)} "
                             "class names were given for its rows (pass class_names= the config's class_name)")
        if table.shape[1] != self.class_embedding.shape[1]:
            raise ValueError(f"class_embedding of the checkpoint is {table.shape[1]}-d, this model's text table is "
                             f"{self.class_embedding.shape[1]}-d (build the model with the checkpoint's text encoder)")
        rows = self.class_embedding.detach().clone()  # names the checkpoint lacks keep this model's rows
        for i, name in enumerate(self.union_names):
            if name in names:
                rows[i] = table[names.index(name)]
        return rows
