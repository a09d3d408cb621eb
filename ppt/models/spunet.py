"""SpUNet: the sparse-convolution U-Net of Pointcept (``SpUNet-v1m1``; with PDNorm, ``SpUNet-v1m3``).

A 5^3 submanifold stem, then per stage a 2^3 stride-2 convolution and residual blocks of two 3^3
submanifold convolutions; the decoder mirrors it with inverse convolutions, concatenating the
encoder features of the same level before its first block; a 1^3 convolution gives per-point
logits. Batch norms use ``eps=1e-3, momentum=0.01``. With the defaults (SpUNet-S: channels
``(32, 64, 128, 256, 256, 128, 96, 96)``, layers ``(2, 3, 4, 6, 2, 2, 2, 2)``) and 6 input
channels / 20 classes it has 39.2M parameters.

``norm="pdnorm"`` swaps every batch norm for :class:`ppt.nn.PDNorm` (per-condition statistics,
adaptive modulation from a context), the backbone of Point Prompt Training.

Module names follow Pointcept's ``SpUNet-v1m3`` (``conv_input.conv``, ``down.0.bn``,
``enc.0.block0.conv1``, ``dec.0.block0.proj_conv`` ...); :meth:`SpUNet.convert_pointcept_state_dict`
renames ``SpUNet-v1m1`` keys (``conv_input.0``, ``proj.1`` ...) to these, so
``ppt.models.load_weights(model, path, format="pointcept")`` loads Pointcept checkpoints.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ppt.nn import PDNorm, SparseConv3d, SparseInverseConv3d, SubMConv3d
from ppt.sparse import SparseTensor

__all__ = ["SpUNet"]

_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01

Domain = int | str | Tensor | None


def _normalize(norm: nn.Module, features: Tensor, x: SparseTensor, domain: Domain, context: Tensor | None) -> Tensor:
    """Apply a BatchNorm1d or a PDNorm; ``domain`` is a condition or a (batch_size,) per-scene table."""
    if isinstance(norm, PDNorm):
        if isinstance(domain, Tensor):
            domain = domain[x.indices[:, 0].long()]
        return norm(features, domain, context)
    # Batch norm branches on its row count (empty input; one value per channel, an error in
    # training). Every SpUNet level has sites (the input has, and each stride-2 conv halves a grid of
    # side 2**k exactly), so saying so to the compiler lets a level whose size a kernel map decides
    # at run time trace without a branch: the whole network is one graph under torch.compile.
    torch._check(features.shape[0] > (1 if norm.training else 0),
                 lambda: "SpUNet: a level has too few sites for batch norm (2 in training, 1 in eval)")
    return norm(features)


class ConvNormReLU(nn.Module):
    """A sparse convolution, its norm and a ReLU."""

    def __init__(self, conv: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.bn = norm
        self.relu = nn.ReLU()

    def forward(self, x: SparseTensor, domain: Domain = None, context: Tensor | None = None) -> SparseTensor:
        x = self.conv(x)
        return x.replace_feature(self.relu(_normalize(self.bn, x.features, x, domain, context)))


class BasicBlock(nn.Module):
    """Residual block: (3^3 SubM conv, norm, ReLU, 3^3 SubM conv, norm) + shortcut, ReLU. The
    shortcut is a 1^3 conv and a norm when the width changes."""

    def __init__(self, in_channels: int, channels: int, make_norm, indice_key: str) -> None:
        super().__init__()
        if in_channels != channels:
            self.proj_conv = SubMConv3d(in_channels, channels, kernel_size=1, bias=False)
            self.proj_norm = make_norm(channels)
        else:
            self.proj_conv = self.proj_norm = None
        self.conv1 = SubMConv3d(in_channels, channels, kernel_size=3, padding=1, bias=False, indice_key=indice_key)
        self.bn1 = make_norm(channels)
        self.relu = nn.ReLU()
        self.conv2 = SubMConv3d(channels, channels, kernel_size=3, padding=1, bias=False, indice_key=indice_key)
        self.bn2 = make_norm(channels)

    def forward(self, x: SparseTensor, domain: Domain = None, context: Tensor | None = None) -> SparseTensor:
        out = self.conv1(x)
        out = out.replace_feature(self.relu(_normalize(self.bn1, out.features, out, domain, context)))
        out = self.conv2(out)
        features = _normalize(self.bn2, out.features, out, domain, context)
        if self.proj_conv is None:
            shortcut = x.features
        else:
            shortcut = _normalize(self.proj_norm, self.proj_conv(x).features, x, domain, context)
        return out.replace_feature(self.relu(features + shortcut))


class _Blocks(nn.ModuleDict):
    """``block0``, ``block1``, ... applied in order (Pointcept's ``SparseSequential`` of blocks)."""

    def forward(self, x: SparseTensor, domain: Domain = None, context: Tensor | None = None) -> SparseTensor:
        for block in self.values():
            x = block(x, domain, context)
        return x


class SpUNet(nn.Module):
    """Sparse-convolution U-Net for per-point segmentation.

    Args:
        in_channels: input feature width (6: colour + normal, or coordinate + colour).
        num_classes: logits per point; 0 returns the ``channels[-1]``-wide (96) decoder features.
        base_channels: width of the stem.
        channels: widths of the encoder stages then the decoder stages (``len(layers)`` entries).
        layers: residual blocks per stage, same order.
        norm: ``"bn"`` (batch norm) or ``"pdnorm"`` (:class:`ppt.nn.PDNorm` over ``conditions``).
        conditions: the conditions (datasets) of ``norm="pdnorm"``.
        context_channels: width of the PDNorm context.
        zero_init: start PDNorm's modulation at zero (plain per-condition batch norm).
    """

    def __init__(self, in_channels: int = 6, num_classes: int = 20, base_channels: int = 32,
                 channels: Sequence[int] = (32, 64, 128, 256, 256, 128, 96, 96),
                 layers: Sequence[int] = (2, 3, 4, 6, 2, 2, 2, 2), norm: str = "bn",
                 conditions: Sequence[str] = ("ScanNet", "S3DIS", "Structured3D"), context_channels: int = 256,
                 zero_init: bool = True) -> None:
        super().__init__()
        channels, layers = tuple(int(c) for c in channels), tuple(int(n) for n in layers)
        if len(channels) != len(layers) or len(layers) % 2 or not layers:
            raise ValueError(f"SpUNet: channels and layers need the same even, non-zero length, got {channels} and {layers}")
        if min(channels) < 1 or min(layers) < 1 or in_channels < 1 or base_channels < 1 or num_classes < 0:
            raise ValueError("SpUNet: widths and block counts must be positive (num_classes >= 0)")
        if norm not in ("bn", "pdnorm"):
            raise ValueError(f"SpUNet: norm must be 'bn' or 'pdnorm', got {norm!r}")
        self.in_channels, self.num_classes, self.base_channels = in_channels, num_classes, base_channels
        self.channels, self.layers, self.norm = channels, layers, norm
        self.conditions, self.context_channels, self.zero_init = tuple(conditions), context_channels, zero_init
        self.num_stages = len(layers) // 2
        self.out_channels = num_classes if num_classes > 0 else channels[-1]

        if norm == "bn":
            def make_norm(width: int) -> nn.Module:
                return nn.BatchNorm1d(width, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        else:
            def make_norm(width: int) -> nn.Module:
                return PDNorm(width, self.conditions, context_channels=context_channels, eps=_BN_EPS,
                              momentum=_BN_MOMENTUM, zero_init=zero_init)

        self.conv_input = ConvNormReLU(
            SubMConv3d(in_channels, base_channels, kernel_size=5, padding=1, bias=False, indice_key="stem"),
            make_norm(base_channels))
        self.down, self.enc, self.up, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        enc_channels, dec_channels = base_channels, channels[-1]
        for s in range(self.num_stages):
            self.down.append(ConvNormReLU(
                SparseConv3d(enc_channels, channels[s], kernel_size=2, stride=2, bias=False, indice_key=f"spconv{s + 1}"),
                make_norm(channels[s])))
            self.enc.append(_Blocks({f"block{i}": BasicBlock(channels[s], channels[s], make_norm, f"subm{s + 1}")
                                     for i in range(layers[s])}))
            # Decoder stage s upsamples from level s + 1 to level s and joins level s's skip.
            up_in = channels[len(channels) - s - 2]
            self.up.append(ConvNormReLU(
                SparseInverseConv3d(up_in, dec_channels, kernel_size=2, bias=False, indice_key=f"spconv{s + 1}"),
                make_norm(dec_channels)))
            self.dec.append(_Blocks({
                f"block{i}": BasicBlock(dec_channels + enc_channels if i == 0 else dec_channels, dec_channels, make_norm,
                                        f"subm{s}")
                for i in range(layers[len(channels) - s - 1])}))
            enc_channels, dec_channels = channels[s], channels[len(channels) - s - 2]
        self.final = SubMConv3d(channels[-1], num_classes, kernel_size=1, padding=1, bias=True) if num_classes else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Pointcept's initialisation: truncated normal (std 0.02) for SubM convolutions and linear
        layers with zero biases, unit / zero norm affines; strided convolutions keep their default."""
        for module in self.modules():
            if isinstance(module, (SubMConv3d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm1d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # After the Linear pass above, which also reaches the modulation's Linear (Pointcept's
        # ``apply`` visits children first, so there too the zeroing comes last).
        for module in self.modules():
            if isinstance(module, PDNorm) and module.modulation is not None and self.zero_init:
                nn.init.zeros_(module.modulation[1].weight)
                nn.init.zeros_(module.modulation[1].bias)

    def grid_shape(self, spatial_shape: Sequence[int]) -> tuple[int, int, int]:
        """The grid the network runs on: the smallest cube of side ``2**k >= 2**(num_stages + 2)``
        that holds ``spatial_shape``.

        Every stage's stride-2 convolution halves it exactly, so no site falls off the grid (what
        Pointcept's ``max index + 96`` ensures), and the grid does not depend on the sites: a
        compiled model sees one shape for all scenes of similar extent instead of recompiling for
        each (the kernel-map ops take the shape as constants). The sites, and so the outputs, are
        the same on any grid that holds them.
        """
        side = max(2 ** (self.num_stages + 2), 1 << (max(spatial_shape) - 1).bit_length())
        return side, side, side

    def _scene_domain(self, domain: Domain, x: SparseTensor) -> Domain:
        """A single condition as is; a per-point (N,) tensor as a (batch_size,) per-scene table.
        Batch norm ignores it, but a given domain still reaches the blocks (prompt adapters use it)."""
        if domain is None and self.norm == "bn":
            return None
        if domain is None:
            raise ValueError("SpUNet(norm='pdnorm'): forward needs domain (a condition index or name, or an (N,) "
                             "int64 tensor per point)")
        if not isinstance(domain, Tensor) or domain.dim() == 0:
            return domain
        if domain.dtype != torch.int64 or domain.shape != (x.features.shape[0],):
            raise ValueError(f"SpUNet: a domain tensor must be int64 of shape (N,) = ({x.features.shape[0]},), got "
                             f"{domain.dtype} of shape {tuple(domain.shape)}")
        scene = x.indices[:, 0].long()
        first = torch.full((x.batch_size,), -1, dtype=torch.int64, device=domain.device).scatter_reduce(
            0, scene, domain, reduce="amin", include_self=False)
        last = torch.full((x.batch_size,), -1, dtype=torch.int64, device=domain.device).scatter_reduce(
            0, scene, domain, reduce="amax", include_self=False)
        if not bool((first == last).all()):
            raise ValueError("SpUNet: all points of a scene must share one condition (domain differs within a scene)")
        return first

    def forward(self, x: SparseTensor, domain: Domain = None, context: Tensor | None = None, *,
                after_stem: Callable[[SparseTensor], SparseTensor] | None = None) -> Tensor:
        """Per-point outputs ``(N, num_classes)`` (``(N, channels[-1])`` when ``num_classes == 0``)
        in the order of ``x``'s rows (of ``after_stem``'s output when given).

        Args:
            x: input ``SparseTensor`` with ``in_channels`` features; sites ``[b, x, y, z]`` inside
                its spatial shape, which the network widens to :meth:`grid_shape` (so no site falls
                off the grid when downsampling).
            domain: the condition of the batch (index or name) or an ``(N,)`` int64 condition
                per point (constant within each scene); required by ``norm="pdnorm"``, passed
                on to the blocks (as a per-scene table) by ``norm="bn"``.
            context: ``(len(conditions), context_channels)`` prompts, used by ``norm="pdnorm"``.
            after_stem: maps the stem's output to the tensor the encoder continues from (same width
                and spatial shape; sites may be added, as UniPre3D's point fusion does).
        """
        if not isinstance(x, SparseTensor):
            raise TypeError(f"SpUNet expects a ppt.sparse.SparseTensor, got {type(x).__name__}")
        if x.ndim != 3:
            raise ValueError(f"SpUNet expects a 3-D SparseTensor (indices (N, 4)), got a {x.ndim}-D one")
        if x.indices.shape[0] == 0:
            raise ValueError("SpUNet: the input has no sites (an empty scene)")
        x = SparseTensor(x.features, x.indices, self.grid_shape(x.spatial_shape), x.batch_size)
        domain = self._scene_domain(domain, x)

        x = self.conv_input(x, domain, context)
        if after_stem is not None:
            x = after_stem(x)
        skips = [x]
        for down, enc in zip(self.down, self.enc):
            x = enc(down(x, domain, context), domain, context)
            skips.append(x)
        x = skips.pop()
        for s in reversed(range(self.num_stages)):
            x = self.up[s](x, domain, context)
            x = x.replace_feature(torch.cat([x.features, skips.pop().features], dim=1))
            x = self.dec[s](x, domain, context)
        if self.final is not None:
            x = self.final(x)
        return x.features

    @staticmethod
    def convert_pointcept_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Keys of a Pointcept SpUNet (``SpUNet-v1m1`` / ``-v1m3``, bare or as the ``backbone.*``
        of a segmentor) renamed to this module's; other keys pass unchanged (and are reported as
        unexpected by ``load_weights``). PDNorm's ``bns.{i}.*`` rows are converted by
        :class:`ppt.nn.PDNorm` when the state dict is loaded."""
        renames = ((re.compile(r"^(conv_input|down\.\d+|up\.\d+)\.0\."), r"\1.conv."),
                   (re.compile(r"^(conv_input|down\.\d+|up\.\d+)\.1\."), r"\1.bn."),
                   (re.compile(r"\.proj\.0\."), ".proj_conv."),
                   (re.compile(r"\.proj\.1\."), ".proj_norm."))
        converted = {}
        for key, value in state_dict.items():
            if key.startswith("backbone."):
                key = key[len("backbone."):]
            for pattern, replacement in renames:
                key = pattern.sub(replacement, key)
            converted[key] = value
        return converted
