"""Optimizers with per-pattern parameter groups, and step-wise learning-rate schedules."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import torch
from torch import nn

from ppt.engine.config import OptimConfig, ScheduleConfig

__all__ = ["build_optimizer", "build_scheduler", "parameter_groups", "WarmupCosine"]


def parameter_groups(model: nn.Module, config: OptimConfig) -> list[dict]:
    """Trainable parameters split by :class:`~ppt.engine.config.ParamGroupConfig` patterns (first
    match wins; the rest form the base group), each group with ``lr`` and ``weight_decay``. A model
    with its own ``parameter_groups()`` (``{"params", "lr_scale"}`` dicts, e.g. Point Prompt
    Training's prompt parameters at 0.1) has those scales multiplied in. Frozen parameters are
    left out. Empty groups are dropped."""
    rules = list(config.param_groups)
    model_scale = {id(p): float(group["lr_scale"]) for group in getattr(model, "parameter_groups", list)()
                   for p in group["params"]}
    buckets: dict[tuple[int, float, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        rule = next((i for i, group in enumerate(rules) if fnmatch.fnmatchcase(name, group.pattern)), -1)
        # Point-MAE / DAPT (tools/builder.py): no decay on 1-d parameters, biases and tokens (cls, mask, prompts)
        no_decay = config.no_decay_1d and (parameter.dim() <= 1 or name.endswith(".bias") or "token" in name)
        buckets.setdefault((rule, model_scale.get(id(parameter), 1.0), no_decay), []).append(parameter)
    if not buckets:
        raise ValueError("build_optimizer: the model has no trainable parameters")
    groups = []
    for (rule, own_scale, no_decay), parameters in sorted(buckets.items(), key=lambda item: item[0]):
        scale = (rules[rule].lr_scale if rule >= 0 else 1.0) * own_scale
        decay = rules[rule].weight_decay if rule >= 0 and rules[rule].weight_decay is not None else config.weight_decay
        groups.append({"params": parameters, "lr": config.lr * scale, "weight_decay": 0.0 if no_decay else decay,
                       "lr_scale": scale})
    return groups


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """SGD (``momentum``, ``nesterov``) or AdamW (``betas``, ``eps``) over :func:`parameter_groups`."""
    groups = parameter_groups(model, config)
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps,
                                 weight_decay=config.weight_decay)
    raise ValueError(f"optim.name must be 'sgd' or 'adamw', got {config.name!r}")


@dataclass
class WarmupCosine:
    """Multiplier of the base lr at a step: linear warm-up from 0 over ``warmup`` steps, then
    cosine from 1 to ``min_ratio`` at ``total`` steps (a plain object so the scheduler's state
    holds only numbers)."""

    total: int
    warmup: int
    min_ratio: float

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per optimizer step over ``total_steps`` steps."""
    if config.name == "onecycle":
        # torch's OneCycleLR divides by its warm-up length (pct_start * total_steps - 1), so
        # the warm-up lasts at least 2 steps (runs of 3 steps and more) and stays short of 1 step below that
        pct_start = max(config.pct_start, 2 / total_steps) if total_steps >= 3 else min(config.pct_start, 0.25)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=total_steps,
            pct_start=pct_start, anneal_strategy="cos", div_factor=config.div_factor,
            final_div_factor=config.final_div_factor,
            cycle_momentum=isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] > 0)
    if config.name == "cosine":
        warmup = int(round(config.warmup_fraction * total_steps))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup, config.min_lr_ratio))
    if config.name == "step":
        if config.step_size < 1 or not 0 < config.gamma <= 1:
            raise ValueError(f"schedule 'step' needs step_size >= 1 and 0 < gamma <= 1, got {config.step_size} and "
                             f"{config.gamma}")
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, 0, 1.0))
    raise ValueError(f"schedule.name must be 'onecycle', 'cosine', 'step' or 'constant', got {config.name!r}")
