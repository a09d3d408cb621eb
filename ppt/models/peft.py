"""Which parameters each fine-tuning method trains, by an explicit rule on parameter names, and the
trainable-vs-total parameter count.

The rules (``name`` is a key of ``model.named_parameters()``, split at dots):

============== =====================================================================================
method         trainable parameters
============== =====================================================================================
``full``       all
``linear``     the task head, ``cls_head_finetune.*`` (linear probing of frozen features); the
               part-segmentation head of :class:`ppt.models.PointMAEPartSeg` is several modules
``bitfit``     head, ``cls_token``, ``cls_pos`` and every ``*.bias``
``lora``       head, ``cls_token``, ``cls_pos`` and the low-rank updates ``*.lora.*``
``adaptformer`` head, ``cls_token``, ``cls_pos`` and the parallel adapters ``*.adapter.*``
``vpt_deep``   head, ``cls_token``, ``cls_pos`` and ``blocks.prompt_tokens``
``dapt``       head, ``cls_token``, ``cls_pos``, every ``tfts_gamma_*`` / ``tfts_beta_*`` (scale/shift)
               and the Dynamic Adapters ``*.Adapter_MLP.*`` (DAPT's rule: names containing ``cls``,
               ``tfts`` or ``Adapter``)
============== =====================================================================================

Frozen BatchNorm layers (the patch encoder's) keep updating their running statistics in training
mode, as in the official DAPT and Point-MAE code, unless the model is built with
``frozen_norm_stats=True``: then every BatchNorm whose parameters are all frozen stays in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["PEFT_METHODS", "is_trainable", "freeze_by_rule", "ParameterCount", "count_parameters", "PeftModule"]

PEFT_METHODS = ("full", "linear", "bitfit", "lora", "adaptformer", "vpt_deep", "dapt")
_HEAD = "cls_head_finetune"
_TOKENS = ("cls_token", "cls_pos")


def is_trainable(method: str, name: str, head: tuple[str, ...] = (_HEAD,)) -> bool:
    """Whether ``method`` trains the parameter called ``name`` (see the module docstring); ``head``
    names the top-level modules of the task head (the part-segmentation models have several)."""
    if method not in PEFT_METHODS:
        raise ValueError(f"peft method must be one of {PEFT_METHODS}, got {method!r}")
    parts = name.split(".")
    if method == "full" or parts[0] in head:
        return True
    if method == "linear":
        return False
    if parts[0] in _TOKENS:
        return True
    if method == "bitfit":
        return parts[-1] == "bias"
    if method == "lora":
        return "lora" in parts[:-1]
    if method == "adaptformer":
        return "adapter" in parts[:-1]
    if method == "vpt_deep":
        return parts[-1] == "prompt_tokens"
    return "Adapter_MLP" in parts[:-1] or parts[-1].startswith(("tfts_gamma_", "tfts_beta_"))


def freeze_by_rule(model: nn.Module, method: str, head: tuple[str, ...] = (_HEAD,)) -> None:
    """Set ``requires_grad`` of every parameter of ``model`` by :func:`is_trainable`."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(is_trainable(method, name, head))


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    def __str__(self) -> str:
        share = 100.0 * self.trainable / self.total if self.total else 0.0
        return f"trainable parameters: {self.trainable:,} of {self.total:,} ({share:.2f}%)"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable (``requires_grad``) and total parameters of ``model``."""
    parameters = list(model.parameters())
    return ParameterCount(trainable=sum(p.numel() for p in parameters if p.requires_grad),
                          total=sum(p.numel() for p in parameters))


class PeftModule(nn.Module):
    """Base of the object classifiers: reports its parameter count, and ``train()`` keeps fully frozen
    BatchNorm layers in eval mode when ``self.frozen_norm_stats`` is set, so their running statistics
    stay those of the checkpoint."""

    frozen_norm_stats: bool = False

    def train(self, mode: bool = True) -> PeftModule:
        super().train(mode)
        if mode and self.frozen_norm_stats:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                        p.requires_grad for p in module.parameters()):
                    module.eval()
        return self

    def parameter_count(self) -> ParameterCount:
        """Trainable and total parameters (the line to print at the start of training)."""
        return count_parameters(self)
