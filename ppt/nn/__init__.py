"""PyTorch modules of ppt built on the fused ops."""

from ppt.nn.renderer import GaussianRenderer

__all__ = ["GaussianRenderer"]
