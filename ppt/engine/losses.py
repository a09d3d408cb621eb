"""The segmentation tasks' loss: ``train.loss``, a weighted sum of terms as Pointcept's ``criteria``
lists them (``CrossEntropyLoss`` with optional class weights, ``LovaszLoss(mode="multiclass")``).

Both terms see only the labelled points (``-1``, and every point outside a limited annotation, is
ignored) and, for Point Prompt Training, only each point's own dataset classes: the cross-entropy
through :func:`~ppt.models.point_prompt_training.restricted_cross_entropy`, the Lovász term through
the same restricted softmax. In a batch that mixes datasets, class ``k`` of one dataset and class
``k`` of another are different classes: the Lovász term runs in the union of the datasets' label
spaces (each dataset's classes its own columns, zero probability for the other datasets' points),
so it averages over the (dataset, class) pairs present, and a single-dataset batch gets exactly
Pointcept's loss over that dataset's classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ppt.engine.config import LossConfig
from ppt.models.point_prompt_training import check_restricted_target, restricted_cross_entropy
from ppt.nn.losses import lovasz_softmax

__all__ = ["SegmentationLoss"]


class SegmentationLoss:
    """``sum(term.weight * term(logits, target))`` over the terms of ``train.loss``.

    Args:
        terms: the :class:`~ppt.engine.config.LossConfig` entries.
        num_classes: the classes of the logits, which ``class_weights`` must match (``None``: not
            known up front, as for a multi-dataset model; class weights are then refused).
        label_smoothing: ``train.label_smoothing``, for the cross-entropy terms.

    Raises:
        ValueError: class weights whose count is not ``num_classes`` (named by their key).
    """

    def __init__(self, terms: Sequence[LossConfig], num_classes: int | None, *, label_smoothing: float = 0.0) -> None:
        for i, term in enumerate(terms):
            if term.class_weights is not None and len(term.class_weights) != num_classes:
                expected = (f"one per class ({num_classes})" if num_classes is not None else
                            "unset for a model of several datasets (whose classes differ)")
                raise ValueError(f"train.loss[{i}].class_weights has {len(term.class_weights)} weights; expected "
                                 f"{expected}")
        self.terms = tuple(terms)
        self.label_smoothing = label_smoothing

    def __call__(self, logits: Tensor, target: Tensor, *, allowed: Tensor | None = None,
                 label_space: Tensor | None = None, scene: Tensor | None = None) -> Tensor:
        """The loss of ``(N, C)`` ``logits`` for ``(N,)`` int64 ``target`` (``-1`` = unlabelled).

        ``allowed``: ``(C,)`` or ``(N, C)`` bool, the classes each point may have (unset: all).
        ``label_space``: ``(N,)`` int64 dataset id per point of a mixed batch, whose columns mean
        another class per dataset (unset: one label space). ``scene``: ``(N,)`` int64 scene per
        point, for Lovász terms with ``per_scene``.
        """
        if allowed is None:
            allowed = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
        check_restricted_target(logits, target, allowed, -1, "train.loss")
        total = None
        for term in self.terms:
            if term.name == "ce":
                weight = None if term.class_weights is None else logits.new_tensor(term.class_weights)
                value = restricted_cross_entropy(logits, target, allowed, weight=weight,
                                                 label_smoothing=self.label_smoothing)
            else:
                value = self._lovasz(logits, target, allowed, label_space, term, scene)
            total = term.weight * value if total is None else total + term.weight * value
        return total

    @staticmethod
    def _lovasz(logits: Tensor, target: Tensor, allowed: Tensor, label_space: Tensor | None, term: LossConfig,
                scene: Tensor | None) -> Tensor:
        allowed_rows = allowed.expand_as(logits)
        probabilities = logits.masked_fill(~allowed_rows, float("-inf")).softmax(1)
        if label_space is not None:  # dataset d's class k becomes column d * C + k of the union
            width = logits.shape[1]
            spaces = int(label_space.max()) + 1 if label_space.numel() else 1
            columns = label_space[:, None] * width + torch.arange(width, device=logits.device)
            probabilities = probabilities.new_zeros(logits.shape[0], spaces * width).scatter(1, columns, probabilities)
            union_allowed = torch.zeros(spaces * width, dtype=torch.bool, device=logits.device)
            union_allowed[columns[allowed_rows]] = True
            target = torch.where(target >= 0, label_space * width + target, target)
        else:
            union_allowed = allowed_rows.any(0)
        # "all": every class some point may have (not the columns padding a smaller dataset's classes)
        classes = union_allowed.nonzero().squeeze(1).tolist() if term.classes == "all" else term.classes
        return lovasz_softmax(probabilities, target, ignore_index=-1, classes=classes,
                              scene=scene if term.per_scene else None)
