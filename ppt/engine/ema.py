"""An exponential moving average of a model's weights (``train.ema_decay``).

The train loop updates it after every optimizer step; checkpoints hold the average as the model's
weights (what ``ppt eval``, ``ppt export-backbone`` and ``model.weights`` load) and the raw weights
in the resume state; evaluation during training swaps the average in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """``average = decay * average + (1 - decay) * weights`` over every floating-point entry of the
    model's state dict (parameters and buffers such as BatchNorm statistics); other entries (step
    counters) are copied.

    Args:
        model: the trained model (unwrapped from DDP); the average starts as a copy of its weights.
        decay: in ``[0, 1)``.
        every: update every that many optimizer steps (the official UniPre3D: 10).
        start: during the first ``start`` steps the average copies the weights (the official: 100), so
            it does not keep the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float, *, every: int = 1, start: int = 0) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"train.ema_decay must lie in [0, 1), got {decay}")
        if every < 1 or start < 0:
            raise ValueError(f"train.ema_every must be >= 1 and train.ema_start >= 0, got {every} and {start}")
        self.decay, self.every, self.start = float(decay), int(every), int(start)
        self.average = {name: value.detach().clone() for name, value in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold in the weights after optimizer step ``step`` (counted from 1)."""
        copy = step <= self.start
        if not copy and (step - self.start) % self.every:
            return
        for name, value in model.state_dict().items():
            average = self.average[name]
            if copy or not average.is_floating_point():
                average.copy_(value)
            else:
                average.lerp_(value.to(average.dtype), 1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        return self.average

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        if set(state) != set(self.average):
            raise ValueError("the weight average's keys differ from the model's")
        for name, value in state.items():
            self.average[name].copy_(value)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model holds the average inside the block and its own weights again after it."""
        own = {name: value.detach().clone() for name, value in model.state_dict().items()}
        model.load_state_dict(self.average)
        try:
            yield model
        finally:
            model.load_state_dict(own)
