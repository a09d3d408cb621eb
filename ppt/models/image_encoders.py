"""The frozen 2D branch of UniPre3D: image encoders that turn the reference view into a per-pixel
feature map, behind one interface, and the trainable adapter that maps it to the point features.

Every encoder is an :class:`ImageEncoder`: ``forward(images (B, 3, H, W) in [0, 1]) -> (B, C, h, w)``
with ``C = out_channels``, frozen (no trainable parameters, always in eval mode).
:func:`create_image_encoder` builds one from a name:

* ``"conv"``: :class:`ConvImageEncoder`, a small CNN with fixed filters; needs nothing to download
  (the offline default).
* ``"sd-vae"`` or ``"sd-vae:<folder>"``: the Stable Diffusion VAE (diffusers ``AutoencoderKL``) the
  paper uses, loaded from a local folder; the features are its decoder's last up-block output
  (128 channels at full resolution), as in the official code.

diffusers (the ``vae`` extra) is imported only when ``"sd-vae"`` is asked for.
"""

from __future__ import annotations

import math
import os
from os import PathLike

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppt._extras import install_hint

__all__ = [
    "ImageEncoder", "ConvImageEncoder", "VAEImageEncoder", "FeatureAdapter",
    "create_image_encoder", "IMAGE_ENCODERS",
]

IMAGE_ENCODERS = ("conv", "sd-vae", "sd-vae:<folder>")
"""The names :func:`create_image_encoder` understands."""

SD_VAE_ENV = "PPT_SD_VAE"
"""Environment variable naming the local folder of the VAE (``config.json`` + weights) for ``"sd-vae"``."""


class ImageEncoder(nn.Module):
    """Base of the frozen encoders: subclasses set ``out_channels`` and implement :meth:`encode`.

    The encoder never trains: its parameters are frozen at construction and :meth:`train` keeps it
    in eval mode (its normalisation statistics and dropout stay fixed).
    """

    out_channels: int

    def freeze(self) -> None:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> ImageEncoder:
        return super().train(False)

    def encode(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, out_channels, h, w)``."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"{type(self).__name__}: images must be float (B, 3, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        with torch.no_grad():
            # Standard layout: CPU GroupNorm's backward crashes on channels-last inputs whose gradient
            # has another layout (torch 2.13), and images permuted from (B, H, W, 3) are channels-last.
            return self.encode(images.contiguous()).contiguous()


class ConvImageEncoder(ImageEncoder):
    """A small CNN with fixed random filters (He-initialised from ``seed``, so every run and every
    machine builds the same encoder): three 3x3 conv + ReLU stages at strides 1, 2, 2, whose outputs
    are upsampled to the input size and concatenated (a hypercolumn of colour, edge and context
    features, ``sum(channels)`` channels at full resolution).

    Random convolutional features keep the colour and local structure of the view, which is what
    the fusion needs; the pre-trained VAE (``sd-vae``) is the paper's choice where its weights are
    available.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 32, 64), seed: int = 0) -> None:
        super().__init__()
        if not channels or any(c < 1 for c in channels):
            raise ValueError(f"ConvImageEncoder: channels must be positive, got {channels}")
        generator = torch.Generator().manual_seed(seed)
        stages = []
        in_channels = 3
        for index, out_channels in enumerate(channels):
            conv = nn.Conv2d(in_channels, out_channels, 3, stride=1 if index == 0 else 2, padding=1)
            with torch.no_grad():
                conv.weight.normal_(0.0, math.sqrt(2.0 / (9 * in_channels)), generator=generator)
                conv.bias.zero_()
            stages.append(conv)
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.out_channels = sum(channels)
        self.freeze()

    def encode(self, images: Tensor) -> Tensor:
        size = images.shape[-2:]
        # Centre the input so the first layer's ReLU sees signed colours.
        x = images * 2.0 - 1.0
        outputs = []
        for conv in self.stages:
            x = F.relu(conv(x))
            outputs.append(x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear",
                                                                        align_corners=False))
        return torch.cat(outputs, dim=1)


class VAEImageEncoder(ImageEncoder):
    """The official 2D branch: a full pass of a diffusers ``AutoencoderKL`` (encode, posterior mode,
    decode), keeping the output of its decoder's last up-block (``block_out_channels[0]`` channels at
    the input resolution).

    Args:
        vae: an ``AutoencoderKL`` (see :meth:`from_folder`).
    """

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.out_channels = int(vae.config.block_out_channels[0])
        self.freeze()

    @classmethod
    def from_folder(cls, folder: str | PathLike) -> VAEImageEncoder:
        """Load the VAE from a local folder holding its ``config.json`` and weights (no download)."""
        try:
            from diffusers import AutoencoderKL
        except ImportError as error:
            raise ImportError(f"image encoder 'sd-vae' needs the diffusers package: {install_hint('vae')}") from error
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"image encoder 'sd-vae': {folder} is not a folder holding the VAE's "
                                    "config.json and weights")
        return cls(AutoencoderKL.from_pretrained(folder, local_files_only=True))

    def encode(self, images: Tensor) -> Tensor:
        captured: list[Tensor] = []
        hook = self.vae.decoder.up_blocks[-1].register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            # The VAE was trained on images in [-1, 1].
            self.vae(images * 2.0 - 1.0, sample_posterior=False)
        finally:
            hook.remove()
        return captured[0]


def create_image_encoder(name: str) -> ImageEncoder:
    """Build a frozen encoder from a name of :data:`IMAGE_ENCODERS` (see the module docstring).

    ``"sd-vae"`` reads the VAE folder from the ``PPT_SD_VAE`` environment variable;
    ``"sd-vae:<folder>"`` names it directly.
    """
    if name == "conv":
        return ConvImageEncoder()
    if name == "sd-vae":
        folder = os.environ.get(SD_VAE_ENV)
        if not folder:
            raise ValueError(f"image encoder 'sd-vae': set {SD_VAE_ENV} to the local folder of the VAE "
                             "(config.json + weights) or name it as 'sd-vae:<folder>'")
        return VAEImageEncoder.from_folder(folder)
    if name.startswith("sd-vae:") and len(name) > len("sd-vae:"):
        return VAEImageEncoder.from_folder(name[len("sd-vae:"):])
    raise ValueError(f"image encoder must be one of {IMAGE_ENCODERS}, got {name!r}")


class FeatureAdapter(nn.Sequential):
    """The trainable adapter after the frozen encoder: GroupNorm (``gcd(groups, in_channels)`` groups,
    32 for the encoders here) and a 1x1 convolution to ``out_channels`` (the official ``image_conv``)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 32) -> None:
        super().__init__(nn.GroupNorm(math.gcd(groups, in_channels), in_channels, eps=1e-6),
                         nn.Conv2d(in_channels, out_channels, kernel_size=1))
