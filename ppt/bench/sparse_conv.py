"""Sparse-convolution benchmarks on a synthetic indoor room voxelized at 2 cm (~100k voxels), in
float32 on CPU and in float16 and bfloat16 on CUDA (``--dtype`` picks others).

The cases are :data:`NETWORKS` (each run forward and forward+backward unless it says otherwise):
- per layer: SubM k3 at C = 32, 64, 96; the k5 stem (6 -> 32); k2 s2 down (32 -> 64); the inverse
  up (64 -> 32) of that down;
- end to end: a SpUNet-S-shaped stack (k5 stem, four k2 s2 stages 32-64-128-256-256 with two SubM
  k3 each, inverse-conv decoder with skip concatenation);
- the drop-in path: Pointcept's SpUNet-v1m1 (SpUNet-S, 20 classes; the model file of
  :mod:`ppt.bench.spconv_reference`, written against the spconv API) built on ``ppt.spconv`` and on
  ``spconv.pytorch`` from one state_dict, one train step (forward, cross-entropy against fixed
  labels, backward); the gate compares logits, loss and every parameter's gradient.
A new case is one more :class:`Network` entry: a name, its input channels and a builder that makes
the same module from ``ppt.nn`` (or ``ppt.spconv``) or from ``spconv.pytorch``.

Every case checks that two ppt runs agree bit for bit, and ppt's output against spconv's. Baselines,
each timed in the same rounds as ppt:
- ``spconv 1 thread`` (CPU): the spconv 2.x CPU wheel under ``torch.set_num_threads(1)``, the only
  setting in which spconv 2.3.8's CPU path gives correct sums (it races with more threads);
- ``spconv N threads`` (CPU): spconv with torch's thread count, timed only (its results race);
- ``spconv`` (CUDA): the ``spconv-cu12x`` wheel.
The FLOPs of each case (2 x pairs x Cin x Cout per conv, 3x that for forward+backward) give its
fraction of the machine's GEMM rate. spconv 2.3.8's CPU backward asks for a CUDA stream: this suite
patches ``spconv.pytorch.ops.get_current_stream`` to return 0 (stream 0) for the rest of the process.

Run: ``ppt bench sparse_conv [--quick] [--device cpu|cuda] [--dtype ...]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

import ppt.nn as pnn
import ppt.spconv
from ppt.bench.harness import Baseline, Case, Unavailable, torch_threads
from ppt.bench.spconv_reference import QUICK_SPUNET, PointceptSpUNet, spconv_or_reason
from ppt.data.synthetic import indoor_room
from ppt.ops import voxelize
from ppt.sparse import SparseTensor

SUITE = "sparse_conv"
SUPPORTED_DTYPES = ("float32", "float16", "bfloat16")
VOXEL_SIZE = 0.02
ROOM_POINTS = {False: 108_000, True: 6_000}  # ~100k voxels at 2 cm (full), ~6k (quick)


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    return ("float32",) if device.type == "cpu" else ("float16", "bfloat16")


def room_sites(quick: bool, device: torch.device) -> tuple[torch.Tensor, list[int]]:
    coord = indoor_room(ROOM_POINTS[quick], seed=0)
    indices = voxelize(coord, VOXEL_SIZE)[0]
    shape = (indices[:, 1:].amax(0) + 1).tolist()
    return indices.to(device), shape


# ---------------------------------------------------------------------------------------------
# networks, built identically from ppt.nn or spconv.pytorch


class SingleLayer(nn.Module):
    def __init__(self, lib, make: Callable, parent: Callable | None = None):
        super().__init__()
        self.parent = parent(lib) if parent else None  # e.g. the down conv an inverse conv undoes
        self.layer = make(lib)

    def forward(self, x):
        if self.parent is not None:
            with torch.no_grad():
                x = self.parent(x)
            x = x.replace_feature(x.features.detach().requires_grad_(x.features.requires_grad))
        return self.layer(x)


class SpUNetS(nn.Module):
    """SpUNet-shaped stack: stem, 4 encoder stages (down + 2 SubM), 4 decoder stages (inverse up,
    skip concat, 2 SubM). Plain ReLU between convs so that both libraries run identical math."""

    def __init__(self, lib, in_channels: int = 6, channels=(32, 64, 128, 256, 256)):
        super().__init__()
        self.stem = lib.SubMConv3d(in_channels, channels[0], 5, bias=False, indice_key="stem")
        self.down, self.enc, self.up, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for s in range(len(channels) - 1):
            c_in, c_out = channels[s], channels[s + 1]
            self.down.append(lib.SparseConv3d(c_in, c_out, 2, stride=2, bias=False, indice_key=f"down{s}"))
            self.enc.append(nn.ModuleList([lib.SubMConv3d(c_out, c_out, 3, bias=False, indice_key=f"subm{s + 1}")
                                           for _ in range(2)]))
            self.up.append(lib.SparseInverseConv3d(c_out, c_in, 2, indice_key=f"down{s}", bias=False))
            self.dec.append(nn.ModuleList([lib.SubMConv3d(2 * c_in, c_in, 3, bias=False, indice_key=f"subm{s}"),
                                           lib.SubMConv3d(c_in, c_in, 3, bias=False, indice_key=f"subm{s}")]))

    @staticmethod
    def _relu(x):
        return x.replace_feature(torch.relu(x.features))

    def forward(self, x):
        x = self._relu(self.stem(x))
        skips = []
        for down, blocks in zip(self.down, self.enc):
            skips.append(x)
            x = self._relu(down(x))
            for block in blocks:
                x = self._relu(block(x))
        for s in reversed(range(len(self.down))):
            x = self._relu(self.up[s](x))
            x = x.replace_feature(torch.cat([x.features, skips[s].features], 1))
            for block in self.dec[s]:
                x = self._relu(block(x))
        return x


class PointceptOnSites(nn.Module):
    """:class:`PointceptSpUNet` (SpUNet-S) called on a sparse tensor's sites and features, in
    Pointcept's batch layout; returns the tensor with the logits as its features."""

    def __init__(self, spconv: ModuleType, in_channels: int = 6, num_classes: int = 20, **widths):
        super().__init__()
        self.net = PointceptSpUNet(spconv, in_channels, num_classes, **widths)

    def forward(self, x):
        offset = torch.bincount(x.indices[:, 0].long(), minlength=x.batch_size).cumsum(0)
        return x.replace_feature(self.net(x.indices[:, 1:], x.features, offset))


# ---------------------------------------------------------------------------------------------
# FLOP counting from ppt's kernel maps


def conv_flops(model: nn.Module, x: SparseTensor) -> int:
    """2 * pairs * Cin * Cout summed over the ppt convolutions that one forward of ``model`` runs."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        x_in = inputs[0]
        if isinstance(module, pnn.SparseInverseConv3d):
            pairs = x_in.cache.find(module.indice_key).pairs.shape[1]
        else:
            pairs = module.kernel_map(x_in).pairs.shape[1]
        total += 2 * pairs * module.in_channels * module.out_channels

    convs = [m for m in model.modules() if isinstance(m, (pnn.SubMConv3d, pnn.SparseConv3d, pnn.SparseInverseConv3d))]
    if isinstance(model, SingleLayer):
        convs = [model.layer]
    handles = [m.register_forward_hook(count) for m in convs]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


# ---------------------------------------------------------------------------------------------
# the cases


@dataclass(frozen=True)
class Network:
    """A case of this suite: ``build(lib)`` makes the module from ``ppt_lib`` (``ppt.nn``, or
    ``ppt.spconv`` for a model file written against the spconv API) or from ``spconv.pytorch``;
    ``passes`` are any of "fwd", "fwd+bwd" and "train step"; ``targets`` maps (device type, pass)
    to the speedup over spconv it must reach; ``repeats`` caps the timed rounds of a full run."""

    name: str
    in_channels: int
    build: Callable[[object], nn.Module]
    targets: dict[tuple[str, str], float] = field(default_factory=dict)
    ppt_lib: ModuleType = pnn
    passes: tuple[str, ...] = ("fwd", "fwd+bwd")
    repeats: int | None = None


def _layer(make: Callable, parent: Callable | None = None) -> Callable[[object], nn.Module]:
    return lambda lib: SingleLayer(lib, make, parent)


NETWORKS = [
    Network("subm k3 C=32", 32, _layer(lambda m: m.SubMConv3d(32, 32, 3, bias=False, indice_key="subm"))),
    Network("subm k3 C=64", 64, _layer(lambda m: m.SubMConv3d(64, 64, 3, bias=False, indice_key="subm"))),
    Network("subm k3 C=96", 96, _layer(lambda m: m.SubMConv3d(96, 96, 3, bias=False, indice_key="subm"))),
    Network("stem subm k5 6->32", 6, _layer(lambda m: m.SubMConv3d(6, 32, 5, bias=False, indice_key="stem"))),
    Network("down k2s2 32->64", 32,
            _layer(lambda m: m.SparseConv3d(32, 64, 2, stride=2, bias=False, indice_key="down"))),
    Network("inverse up k2 64->32", 32,
            _layer(lambda m: m.SparseInverseConv3d(64, 32, 2, indice_key="down", bias=False),
                   parent=lambda m: m.SparseConv3d(32, 64, 2, stride=2, bias=False, indice_key="down"))),
    # Targets of the sparse-conv issue: CPU stack fwd and fwd+bwd >= 2x spconv; GPU fwd+bwd >= 1x.
    Network("SpUNet-S stack", 6, SpUNetS,
            targets={("cpu", "fwd"): 2.0, ("cpu", "fwd+bwd"): 2.0, ("cuda", "fwd+bwd"): 1.0}),
    # Target of the kernel-hardening issue: the drop-in train step >= 2.5x spconv on CPU.
    Network("Pointcept SpUNet-S on ppt.spconv", 6, PointceptOnSites, targets={("cpu", "train step"): 2.5},
            ppt_lib=ppt.spconv, passes=("train step",), repeats=5),
]
NUM_CLASSES = 20  # of the train-step cases' labels (PointceptOnSites' default)


def _sorted_rows(indices: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    key = ((indices[:, 0].long() * 4096 + indices[:, 1]) * 4096 + indices[:, 2]) * 4096 + indices[:, 3]
    return features[torch.argsort(key)]


# ppt vs spconv on the same sites: both accumulate in float32, but sum in different orders.
_TOLERANCE = {torch.float32: 1e-3, torch.float16: 2e-2, torch.bfloat16: 8e-2}


def _check_same_sites(tolerance: float) -> Callable:
    def check(got, expected):
        (got_indices, got_features), (want_indices, want_features) = got, expected
        torch.testing.assert_close(_sorted_rows(got_indices, got_features).float(),
                                   _sorted_rows(want_indices, want_features).float(), rtol=tolerance,
                                   atol=tolerance)
    return check


def _runner(model: nn.Module, make_input: Callable, backward: bool) -> Callable:
    def run():
        x = make_input()
        y = model(x)
        if backward:
            y.features.square().sum().backward()
        return y.indices, y.features.detach()
    return run


def _train_step_runner(model: nn.Module, make_input: Callable, labels: torch.Tensor) -> Callable:
    """Forward, cross-entropy, backward; returns the sites, logits, loss and the parameters'
    gradients flattened into one vector (in ``model.parameters()`` order)."""
    def run():
        model.zero_grad(set_to_none=True)
        y = model(make_input())
        loss = F.cross_entropy(y.features, labels)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        return y.indices, y.features.detach(), loss.detach(), grads
    return run


def _check_train_step(tolerance: float) -> Callable:
    """Same sites, logits and loss within ``tolerance``; gradient vectors within 10 x ``tolerance``
    of each other relative to their norm (the rounding of sums in different orders grows through
    ~40 batch-normalised layers of backward; float64 runs agree to 1e-14)."""
    same_sites = _check_same_sites(tolerance)

    def check(got, expected):
        same_sites(got[:2], expected[:2])
        torch.testing.assert_close(got[2].float(), expected[2].float(), rtol=tolerance, atol=tolerance)
        error = torch.linalg.vector_norm((got[3] - expected[3]).float()) / torch.linalg.vector_norm(expected[3].float())
        assert error <= 10 * tolerance, f"parameter gradients differ by {error:.3g} (relative norm) > {10 * tolerance}"
    return check


def _deterministic(run: Callable) -> Callable:
    def check(got):
        for a, b in zip(got, run()):
            assert torch.equal(a, b), "ppt's sparse convolution must be bitwise deterministic"
    return check


def _spconv_baselines(spconv_run: Callable | None, missing: tuple[str, str] | None, device: torch.device,
                      target: float | None, check: Callable) -> list[Baseline | Unavailable]:
    """spconv as the oracle (on CPU under one thread), and on CPU its multi-thread run, timed only."""
    threads = torch.get_num_threads()
    if device.type == "cuda":
        names = ["spconv"]
    else:
        names = ["spconv 1 thread"] + ([f"spconv {threads} threads (racy, timing only)"] if threads > 1 else [])
    if spconv_run is None:
        return [Unavailable(name, *missing) for name in names]

    def single_thread():
        with torch_threads(1):
            return spconv_run()

    oracle = single_thread if device.type == "cpu" else spconv_run
    return [Baseline(names[0], oracle, check=check, target=target),
            *(Baseline(name, spconv_run) for name in names[1:])]


def network_cases(network: Network, indices: torch.Tensor, shape: list[int], features: torch.Tensor,
                  labels: torch.Tensor | None, spconv: tuple, repeats: int, warmup: int) -> Iterator[Case]:
    """The cases of one network on the given sites (``labels`` for its train step);
    ``spconv`` = :func:`spconv_or_reason`'s answer."""
    spconv_torch, missing = spconv
    device, dtype = features.device, features.dtype
    num_sites = indices.shape[0]
    ours = network.build(network.ppt_lib).to(device=device, dtype=dtype)
    theirs = None
    if spconv_torch is not None:
        theirs = network.build(spconv_torch).to(device=device, dtype=dtype)
        theirs.load_state_dict(ours.state_dict())

    def make_ours(backward):
        return lambda: SparseTensor(features.clone().requires_grad_(backward), indices, shape, 1)

    def make_theirs(backward):
        return lambda: spconv_torch.SparseConvTensor(features.clone().requires_grad_(backward), indices, shape, 1)

    flops = conv_flops(ours, make_ours(False)())
    for pass_name in network.passes:
        backward = pass_name != "fwd"
        if pass_name == "train step":
            run = _train_step_runner(ours, make_ours(False), labels)
            spconv_run = None if theirs is None else _train_step_runner(theirs, make_theirs(False), labels)
            check = _check_train_step(_TOLERANCE[dtype])
        else:
            run = _runner(ours, make_ours(backward), backward)
            spconv_run = None if theirs is None else _runner(theirs, make_theirs(backward), backward)
            check = _check_same_sites(_TOLERANCE[dtype])
        yield Case(
            name=f"{network.name} {pass_name}", run=run, check=_deterministic(run),
            dtype=str(dtype).removeprefix("torch."),
            baselines=_spconv_baselines(spconv_run, missing, device, network.targets.get((device.type, pass_name)),
                                        check),
            params=dict(voxels=num_sites, spatial_shape=shape, voxel_size=VOXEL_SIZE, threads=torch.get_num_threads()),
            flops=flops * (3 if backward else 1), items=(num_sites, "voxels"), warmup=warmup,
            repeats=min(repeats, network.repeats or repeats))


def cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    repeats, warmup = (3, 1) if quick else (10, 2)
    spconv = spconv_or_reason(device)
    indices, shape = room_sites(quick, device)
    generator = torch.Generator().manual_seed(0)
    for network in NETWORKS:
        if quick and network.build is PointceptOnSites:
            network = replace(network, build=partial(PointceptOnSites, **QUICK_SPUNET))
        features = torch.randn(indices.shape[0], network.in_channels, generator=generator).to(device=device, dtype=dtype)
        labels = None
        if "train step" in network.passes:
            labels = torch.randint(NUM_CLASSES, (indices.shape[0],), generator=generator).to(device)
        yield from network_cases(network, indices, shape, features, labels, spconv, repeats, warmup)
