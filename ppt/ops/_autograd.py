"""Autograd registrations shared by the op families."""

from __future__ import annotations

import torch


def register_not_differentiable(op: str, message: str) -> None:
    """Make backpropagating through ``ppt::<op>`` raise ``RuntimeError(message)``.

    Without an autograd formula torch only warns and hands back zero gradients; with this, a
    double backward through an op whose backward op is not differentiable (or a direct use of an
    internal op with inputs that require grad) fails at the backward pass, naming the op.
    """

    def backward(ctx, *grads):
        raise RuntimeError(message)

    torch.library.register_autograd(f"ppt::{op}", backward)
