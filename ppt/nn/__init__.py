"""PyTorch modules of ppt, thin layers over the fused ops of :mod:`ppt.ops`."""

from ppt.nn.pdnorm import PDNorm

__all__ = ["PDNorm"]
