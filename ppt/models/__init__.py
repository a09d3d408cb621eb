"""Models of ppt and loaders for checkpoints of this package and of the original code."""

from ppt.models.spunet import SpUNet
from ppt.models.weights import LoadReport, load_weights

__all__ = ["SpUNet", "load_weights", "LoadReport"]
