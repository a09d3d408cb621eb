"""PyTorch modules of ppt, thin layers over the fused ops of :mod:`ppt.ops`."""

from ppt.nn.pdnorm import PDNorm
from ppt.nn.renderer import GaussianRenderer

__all__ = ["PDNorm", "GaussianRenderer"]
