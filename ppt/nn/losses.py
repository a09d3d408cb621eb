"""Segmentation losses beyond torch's: the Lovász-softmax loss (Berman et al., "The Lovász-Softmax
loss: a tractable surrogate for the optimization of the intersection-over-union measure in neural
networks", CVPR 2018), as Pointcept's outdoor configs add it to the cross-entropy
(``LovaszLoss(mode="multiclass")`` of ``pointcept/models/losses/lovasz.py``).

For class ``c`` the per-point errors are ``e_i = |[y_i = c] - p_i[c]|``; sorted in decreasing
order they are weighted by the increments of the Jaccard loss of the points taken so far
(Algorithm 1 of the paper), which is the Lovász extension of ``1 - IoU_c`` evaluated at the
errors. The loss is the mean over the classes. The sort's permutation is a constant of the
gradient, so the loss is piecewise linear in the probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["lovasz_softmax", "LOVASZ_CLASSES"]

LOVASZ_CLASSES = ("present", "all")
"""The named class selections of :func:`lovasz_softmax` (a sequence of class indices also works)."""


def _jaccard_increments(foreground_sorted: Tensor) -> Tensor:
    """``(P, K)`` weights of the sorted errors: ``J(1..i) - J(1..i-1)`` per column, where ``J`` is
    the Jaccard loss of class ``k`` when the first ``i`` points are predicted wrong (the gradient of
    the Lovász extension, Algorithm 1 of Berman et al.)."""
    totals = foreground_sorted.sum(0, keepdim=True)
    intersection = totals - foreground_sorted.cumsum(0)
    union = totals + (1.0 - foreground_sorted).cumsum(0)  # >= 1 from the first row on: no division by 0
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], 0)


def _lovasz_per_class(probabilities: Tensor, target: Tensor, classes: Tensor) -> Tensor:
    """``(K,)`` Lovász-softmax losses of ``classes`` over the points (all labelled)."""
    foreground = (target[:, None] == classes[None, :]).to(probabilities.dtype)
    errors = (foreground - probabilities[:, classes]).abs()
    errors_sorted, order = torch.sort(errors, dim=0, descending=True)
    return (errors_sorted * _jaccard_increments(foreground.gather(0, order))).sum(0)


def lovasz_softmax(probabilities: Tensor, target: Tensor, *, ignore_index: int = -1,
                   classes: str | Sequence[int] = "present", scene: Tensor | None = None) -> Tensor:
    """Multiclass Lovász-softmax loss of per-point class probabilities.

    Args:
        probabilities: ``(N, C)`` floating class probabilities (a softmax over the classes; a class
            a point may not have, as in Point Prompt Training's restricted softmax, has 0).
        target: ``(N,)`` int64 classes in ``[0, C)``, or ``ignore_index`` for points left out.
        ignore_index: the label of unlabelled points (Pointcept's ``ignore_index=-1``).
        classes: ``"present"`` (Pointcept's and the paper's default): the mean over the classes
            that occur among the labelled points; ``"all"``: over all ``C`` classes (an absent class
            contributes its largest probability); or a sequence of class indices to average over.
        scene: ``None`` (Pointcept's default ``per_image=False``): one loss over all points of the
            batch; or ``(N,)`` int64 scene index per point: the mean over the scenes that have
            labelled points of each scene's loss (Pointcept's ``per_image=True``).

    Returns:
        A scalar; 0 (connected to ``probabilities``' graph) when no point is labelled.

    Raises:
        ValueError: a shape, dtype or value that does not fit (the message names the argument).
    """
    if not isinstance(probabilities, Tensor) or probabilities.dim() != 2 or not probabilities.is_floating_point():
        got = (f"{probabilities.dtype} {tuple(probabilities.shape)}" if isinstance(probabilities, Tensor)
               else type(probabilities).__name__)
        raise ValueError(f"lovasz_softmax: probabilities must be a floating (N, C) tensor, got {got}")
    count, num_classes = probabilities.shape
    if not isinstance(target, Tensor) or target.dtype != torch.int64 or target.shape != (count,):
        got = f"{target.dtype} {tuple(target.shape)}" if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"lovasz_softmax: target must be an int64 tensor of shape ({count},), got {got}")
    if scene is not None and (not isinstance(scene, Tensor) or scene.dtype != torch.int64 or scene.shape != (count,)):
        got = f"{scene.dtype} {tuple(scene.shape)}" if isinstance(scene, Tensor) else type(scene).__name__
        raise ValueError(f"lovasz_softmax: scene must be None or an int64 tensor of shape ({count},), got {got}")
    if isinstance(classes, str):
        if classes not in LOVASZ_CLASSES:
            raise ValueError(f"lovasz_softmax: classes must be one of {LOVASZ_CLASSES} or a sequence of class "
                             f"indices, got {classes!r}")
        chosen = None
    else:
        chosen = [int(c) for c in classes]
        if not chosen or min(chosen) < 0 or max(chosen) >= num_classes:
            raise ValueError(f"lovasz_softmax: classes must be a non-empty sequence of indices in [0, {num_classes}), "
                             f"got {list(classes)}")
    labelled = target != ignore_index
    labels = target[labelled]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"lovasz_softmax: target must hold classes in [0, {num_classes}) or ignore_index="
                         f"{ignore_index}, got values in [{int(labels.min())}, {int(labels.max())}]")
    if not labels.numel():
        return probabilities.sum() * 0.0  # keeps the graph (and DDP) connected when nothing is learnt from
    points, scenes = probabilities[labelled], (scene[labelled] if scene is not None else None)
    groups = [slice(None)] if scenes is None else [scenes == s for s in torch.unique(scenes)]
    losses = []
    for rows in groups:
        group_labels = labels[rows]
        if chosen is not None:
            selected = torch.tensor(chosen, device=target.device)
        elif classes == "all":
            selected = torch.arange(num_classes, device=target.device)
        else:
            selected = torch.unique(group_labels)
        losses.append(_lovasz_per_class(points[rows], group_labels, selected).mean())
    return torch.stack(losses).mean()
