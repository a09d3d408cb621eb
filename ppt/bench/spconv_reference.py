"""Pointcept's SpUNet-v1m1 written once against the spconv API, the reference network of the
spconv comparisons (benchmarks and tests): built on ``spconv.pytorch`` (2.3.8) it is the oracle,
built on :mod:`ppt.spconv` it is the drop-in path, and its state_dict has Pointcept's keys, so
``ppt.models.load_weights(..., format="pointcept")`` loads it into :class:`ppt.models.SpUNet`.

Written after ``pointcept/models/sparse_unet/spconv_unet_v1m1_base.py`` (same module tree and
defaults: SpUNet-S with channels ``(32, 64, 128, 256, 256, 128, 96, 96)``, layers
``(2, 3, 4, 6, 2, 2, 2, 2)``, batch norm ``eps=1e-3, momentum=0.01``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from types import ModuleType

import torch
from torch import Tensor, nn

from ppt.bench.harness import bench_extra_hint

__all__ = ["PointceptSpUNet", "QUICK_SPUNET", "import_spconv", "spconv_or_reason"]

SPCONV_CUDA_HINT = ("pip install spconv-cu126 (the wheel matching your CUDA 12.x; uninstall the CPU wheel "
                    "spconv first)")


def import_spconv() -> ModuleType:
    """``spconv.pytorch``, patched so that its CPU backward runs with a CPU-only torch: spconv 2.3.8
    asks for the current CUDA stream there; ``ops.get_current_stream`` returns 0 (the default
    stream) from then on, for the rest of the process."""
    import spconv.pytorch as spconv_torch
    from spconv.pytorch import ops as spconv_ops

    spconv_ops.get_current_stream = lambda: 0
    return spconv_torch


def spconv_or_reason(device: torch.device) -> tuple[ModuleType | None, tuple[str, str] | None]:
    """``spconv.pytorch`` (patched, see :func:`import_spconv`) when it can be the baseline on
    ``device``, else None and (the reason, the install hint)."""
    if importlib.util.find_spec("spconv") is None:
        return None, ("not installed", bench_extra_hint() if device.type == "cpu" else SPCONV_CUDA_HINT)
    wheels = importlib.metadata.packages_distributions().get("spconv", [])
    if device.type == "cuda" and wheels and all(name.lower() == "spconv" for name in wheels):
        return None, ("the installed spconv wheel is the CPU build", SPCONV_CUDA_HINT)
    return import_spconv(), None


def _basic_block(spconv: ModuleType) -> type:
    class BasicBlock(spconv.SparseModule):
        def __init__(self, in_channels, embed_channels, norm_fn, indice_key):
            super().__init__()
            if in_channels == embed_channels:
                self.proj = spconv.SparseSequential(nn.Identity())
            else:
                self.proj = spconv.SparseSequential(
                    spconv.SubMConv3d(in_channels, embed_channels, kernel_size=1, bias=False), norm_fn(embed_channels))
            self.conv1 = spconv.SubMConv3d(in_channels, embed_channels, kernel_size=3, stride=1, padding=1, bias=False,
                                           indice_key=indice_key)
            self.bn1 = norm_fn(embed_channels)
            self.relu = nn.ReLU()
            self.conv2 = spconv.SubMConv3d(embed_channels, embed_channels, kernel_size=3, stride=1, padding=1,
                                           bias=False, indice_key=indice_key)
            self.bn2 = norm_fn(embed_channels)

        def forward(self, x):
            residual = x
            out = self.conv1(x)
            out = out.replace_feature(self.relu(self.bn1(out.features)))
            out = self.conv2(out)
            out = out.replace_feature(self.bn2(out.features))
            out = out.replace_feature(out.features + self.proj(residual).features)
            return out.replace_feature(self.relu(out.features))

    return BasicBlock


QUICK_SPUNET = dict(base_channels=16, channels=(16, 32, 64, 64, 64, 48, 32, 32), layers=(1,) * 8)
"""The SpUNet widths of ``ppt bench --quick`` (SpUNet-S's shape, a quarter of its channels, one block
a stage), in every case that trains a whole SpUNet, so the quick pass takes minutes on a CPU."""


class PointceptSpUNet(nn.Module):
    """Pointcept's ``SpUNet-v1m1`` on ``spconv`` (``spconv.pytorch`` or ``ppt.spconv``).

    ``forward(grid_coord, feat, offset)`` takes Pointcept's batch layout: ``(N, 3)`` voxel
    coordinates, ``(N, in_channels)`` features and ``(B,)`` cumulative point counts, scenes in
    order; it returns ``(N, num_classes)`` logits in the input's row order.
    """

    def __init__(self, spconv: ModuleType, in_channels: int, num_classes: int, base_channels: int = 32,
                 channels: Sequence[int] = (32, 64, 128, 256, 256, 128, 96, 96),
                 layers: Sequence[int] = (2, 3, 4, 6, 2, 2, 2, 2)) -> None:
        super().__init__()
        self.spconv = spconv
        self.num_stages = len(layers) // 2
        norm_fn = partial(nn.BatchNorm1d, eps=1e-3, momentum=0.01)
        block = _basic_block(spconv)
        self.conv_input = spconv.SparseSequential(
            spconv.SubMConv3d(in_channels, base_channels, kernel_size=5, padding=1, bias=False, indice_key="stem"),
            norm_fn(base_channels), nn.ReLU())
        enc_channels, dec_channels = base_channels, channels[-1]
        self.down, self.up, self.enc, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for s in range(self.num_stages):
            self.down.append(spconv.SparseSequential(
                spconv.SparseConv3d(enc_channels, channels[s], kernel_size=2, stride=2, bias=False,
                                    indice_key=f"spconv{s + 1}"), norm_fn(channels[s]), nn.ReLU()))
            self.enc.append(spconv.SparseSequential(OrderedDict(
                (f"block{i}", block(channels[s], channels[s], norm_fn, f"subm{s + 1}")) for i in range(layers[s]))))
            self.up.append(spconv.SparseSequential(
                spconv.SparseInverseConv3d(channels[len(channels) - s - 2], dec_channels, kernel_size=2, bias=False,
                                           indice_key=f"spconv{s + 1}"), norm_fn(dec_channels), nn.ReLU()))
            self.dec.append(spconv.SparseSequential(OrderedDict(
                (f"block{i}", block(dec_channels + enc_channels if i == 0 else dec_channels, dec_channels, norm_fn,
                                    f"subm{s}")) for i in range(layers[len(channels) - s - 1]))))
            enc_channels, dec_channels = channels[s], channels[len(channels) - s - 2]
        self.final = spconv.SubMConv3d(channels[-1], num_classes, kernel_size=1, padding=1, bias=True)

    def forward(self, grid_coord: Tensor, feat: Tensor, offset: Tensor) -> Tensor:
        counts = torch.diff(offset, prepend=offset.new_zeros(1))
        batch = torch.repeat_interleave(torch.arange(len(offset), device=offset.device), counts)
        sparse_shape = torch.add(torch.max(grid_coord, dim=0).values, 96).tolist()
        x = self.spconv.SparseConvTensor(features=feat, indices=torch.cat([batch.unsqueeze(-1).int(), grid_coord.int()], 1),
                                         spatial_shape=sparse_shape, batch_size=len(offset))
        x = self.conv_input(x)
        skips = [x]
        for s in range(self.num_stages):
            x = self.enc[s](self.down[s](x))
            skips.append(x)
        x = skips.pop(-1)
        for s in reversed(range(self.num_stages)):
            x = self.up[s](x)
            x = x.replace_feature(torch.cat((x.features, skips.pop(-1).features), dim=1))
            x = self.dec[s](x)
        return self.final(x).features
