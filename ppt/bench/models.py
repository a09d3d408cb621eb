"""Model-step benchmarks: the speed and memory targets of the model issues live here.

Every case but the compiled-vs-eager ones is one training step (gradients cleared, forward, loss,
backward, optimizer step) and records the step's peak memory next to its time: on CUDA the peak
allocation, on CPU the process's peak resident memory (the kernel's high-water mark), each beyond
what was in use before the step, so the weights and the optimizer state that outlive the step are
not counted (their size is in the case's ``params``).

- ``SpUNet-S train step``: :class:`ppt.models.SpUNet` (SpUNet-S, Pointcept's defaults, 20 classes)
  against the same network built on spconv 2.3.8 (Pointcept's model file,
  :mod:`ppt.bench.spconv_reference`), whose state_dict is loaded into ppt's with
  ``load_weights(format="pointcept")``; both train with Pointcept's SGD recipe on the same batch of
  synthetic ScanNet-flavour rooms (:mod:`ppt.data.rooms`, grid-sampled at 2 cm and sphere-cropped).
  The gate compares the first step's logits, loss and every gradient. On CPU spconv runs under one
  thread, the only setting in which its CPU path sums correctly (the ``sparse_conv`` suite also
  times its racy multi-thread runs). Throughput in scenes/s; target >= 2x on CPU.
- ``SpUNet-S train step, LiDAR sweep``: the same comparison on one synthetic SemanticKITTI sweep
  (:mod:`ppt.data.sweeps`: the HDL-64E's 64 x 2048 firings, ~120k points, grid-sampled at 5 cm;
  19 classes, 4 input channels xyz + intensity) with Pointcept's outdoor AdamW (lr 0.002, weight
  decay 0.005). Target >= 2x on CPU.
- ``kernel maps, LiDAR sweep``: the kernel maps one SpUNet-S forward builds (the k5 stem and every
  SubM k3 level, the four k2 s2 downs) on the sweep's sites against the same maps on an indoor room
  voxelized at 2 cm to about the same number of sites (``baseline: indoor room``; timing only):
  how the spread-out ring structure of a sweep changes the hash work.
- ``PTv3 train step`` and ``PTv3 forward``: :class:`ppt.models.PointTransformerV3` (Pointcept's ScanNet
  PT-v3m1, 46.2M parameters) on one synthetic ScanNet-flavour room (87k voxels at 2 cm; the quick room
  is sparser and coarser) against Pointcept's PTv3 file on spconv 2.3.8 with torch_scatter replaced by
  torch ops (:mod:`ppt.bench.ptv3_reference`), same weights. Both run Pointcept's non-flash attention
  path (``enable_flash=False``; flash-attn is CUDA-only), without order shuffling and drop path so
  that the gate can compare the first step's logits, loss and every gradient (train step) or the
  logits (forward, eval mode). AdamW as Pointcept's recipe. On CPU spconv runs under one thread, its
  correct CPU setting. Throughput in scenes/s; target >= 1.5x on CPU for the train step.
- ``SpUNet-S forward, torch.compile`` and ``Point-MAE forward, torch.compile``: inference (eval
  mode, no gradients) of SpUNet-S on the SpUNet-S batch and of the Point-MAE classifier on the
  object batch, compiled with ``torch.compile(model, fullgraph=True)`` (one graph, kernel maps
  included) against the same module run eagerly; the gate compares the logits. Compilation happens
  in the gate's call, before the timed rounds. Target: compiled no slower than eager.
- ``PTv3 forward, torch.compile``: the same for PTv3 on its room, compiled with ``fullgraph=False``:
  its serialization depth and patch layout are sizes read from the data on the host at every level
  (as Pointcept's), where the graph breaks (:func:`ptv3_compiled_case`).
- ``DAPT vs full fine-tune train step``: :func:`ppt.models.create_object_classifier` with
  ``peft="dapt"`` against ``peft="full"`` (Point-MAE, all 22.1M parameters trained) at batch 32 x 2048
  points of synthetic ScanObjectNN-style objects, AdamW and gradient clipping as the official
  configs. Targets: DAPT's peak step memory <= 0.65x full fine-tuning's, and its step no slower.
- ``fine-tuning step at the transfer size: <method>``: one case per method of
  :data:`ppt.models.PEFT_METHODS` but ``full`` (linear, BitFit, LoRA, AdaptFormer, VPT-deep, DAPT)
  against full fine-tuning, on the reduced transformer of the DAPT transfer experiment
  (docs/dapt.md; :data:`TRANSFER_MODEL`: 4 blocks x 128, 4 heads, 32 groups of 32 points, drop path
  0.1 and no adapter dropout for every method) at its batch, 32 x 512 points. The step time and peak
  memory the experiment reports come from here, not from its training logs. No targets: the
  experiment states its expectations.
- ``part-seg DAPT vs full fine-tune train step``: :class:`ppt.models.PointMAEPartSeg` with
  ``peft="dapt"`` against ``peft="full"`` (27.1M parameters trained) at Point-MAE's part-segmentation
  batch, 16 x 2048 points of synthetic ShapeNetPart objects (:mod:`ppt.bench.partseg`). The
  per-point head (feature propagation to every point, 3392-channel convolutions) trains in both,
  so its activations bound the saving; target: DAPT's peak step memory below full fine-tuning's.
- ``PointMLP train step``: :class:`ppt.models.PointMLP` on ppt's farthest point sampling and kNN
  against the same weights on the official model file's pure-torch ones, batch 32 x 1,024 points;
  target >= 2x on CPU (:mod:`ppt.bench.pointmlp`).
- ``ppt step`` (single-dataset and mixed batch): a Point Prompt Training step (PDNorm, 3 datasets,
  language-guided head) against the plain SpUNet-S step on the same rooms; target <= 1.1x
  (:mod:`ppt.bench.ppt_step`).
- ``unipre3d object step`` and ``unipre3d scene step``: every view rendered in one rasterizer
  call against one call per image, as the official code loops (:mod:`ppt.bench.unipre3d`).

Run: ``ppt bench models [--quick] [--device cpu|cuda] [--case TEXT] [--profile]``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ppt.bench.harness import Baseline, Case, Unavailable, torch_threads
from ppt.bench.spconv_reference import QUICK_SPUNET, PointceptSpUNet, spconv_or_reason
from ppt.data import SceneBatch, SceneSample, collate_scenes
from ppt.data.rooms import synthesize_room
from ppt.data.synthetic_objects import SCANOBJECTNN_CLASSES, synthesize_object
from ppt.data.synthetic import indoor_room
from ppt.data.transforms import Compose, GridSample, NormalizeColor, SphereCrop
from ppt.bench.ptv3_reference import point_dict, pointcept_ptv3
from ppt.models import PEFT_METHODS, PointTransformerV3, SpUNet, create_object_classifier, load_weights
from ppt.ops import conv_output_shape, sparse_kernel_map, voxelize
from ppt.sparse import SparseTensor

SUITE = "models"
SUPPORTED_DTYPES = ("float32",)

# SpUNet-S: scenes per batch and points kept per scene after grid sampling (the full rooms have
# 66k and 87k voxels at 2 cm, the crop leaves them whole; the quick rooms are sparser and coarser).
ROOMS = {False: dict(scenes=2, density=1.0, grid_size=0.02, point_max=100_000),
         True: dict(scenes=2, density=0.1, grid_size=0.05, point_max=3_000)}
NUM_CLASSES = 20
# The LiDAR sweep: one synthetic SemanticKITTI sweep, firings per turn (full: the HDL-64E's 2048,
# ~120k points) and Pointcept's outdoor grid; 19 classes.
SWEEP = {False: dict(azimuth_steps=2048, grid_size=0.05), True: dict(azimuth_steps=96, grid_size=0.05)}
SWEEP_CLASSES = 19
# Point-MAE / DAPT: objects per batch, points per object.
OBJECTS = {False: dict(batch=32, points=2048), True: dict(batch=2, points=1024)}
# ppt vs spconv on the same sites: float32 sums over ~10^5 sites in different orders. Through
# ~40 layers of batch-normalised backward the gradients drift further: up to 1.1e-2 (relative norm,
# the first down-sampling conv) on the full 153k-voxel batch, while float64 runs agree to 1e-14.
TOLERANCE, GRAD_TOLERANCE, GRAD_FLOOR = 1e-3, 5e-2, 1e-4


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    return ("float32",)


def _state_mib(model: nn.Module, optimizer_slots: int) -> dict[str, float]:
    """MiB of the weights (parameters and buffers) and of the optimizer's state, ``optimizer_slots``
    tensors per trainable parameter (SGD momentum: 1, AdamW: 2): the memory that outlives a step."""
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return dict(weights_mib=round(weights / 2**20, 1), optimizer_state_mib=round(optimizer_slots * trainable / 2**20, 1))


def _first_call_also(step: Callable[[bool], object]) -> Callable[[], object]:
    """``step(gate)`` called with ``gate=True`` the first time only: that call is the correctness
    gate's, and may keep what the check needs (copies of gradients) without burdening the timed
    and measured steps."""
    calls = []

    def run():
        calls.append(None)
        return step(len(calls) == 1)
    return run


# ---------------------------------------------------------------------------------------------
# SpUNet-S on ppt against Pointcept's SpUNet on spconv


def room_batch(quick: bool):
    """The SpUNet-S batch: synthetic ScanNet-flavour rooms, grid-sampled and cropped, collated."""
    config = ROOMS[quick]
    chain = Compose([GridSample(config["grid_size"]), SphereCrop(config["point_max"]), NormalizeColor()])
    samples = []
    for seed in range(config["scenes"]):
        room = synthesize_room("scannet", seed, density=config["density"])
        sample = SceneSample(torch.from_numpy(room.coord), torch.from_numpy(room.color).float(),
                             torch.from_numpy(room.normal), torch.from_numpy(room.segment),
                             torch.from_numpy(room.instance), f"room{seed}", "ScanNet")
        samples.append(chain(sample, torch.Generator().manual_seed(seed)))
    return collate_scenes(samples)


def sweep_batch(quick: bool) -> SceneBatch:
    """One synthetic SemanticKITTI sweep read back through :class:`ppt.data.SemanticKITTI`,
    grid-sampled (Pointcept's outdoor grid), collated with features xyz + intensity."""
    import tempfile

    from ppt.data import SemanticKITTI, write_synthetic_sweeps

    config = SWEEP[quick]
    with tempfile.TemporaryDirectory() as root:
        write_synthetic_sweeps(root, "semantickitti", 2, seed=0, azimuth_steps=config["azimuth_steps"])
        sample = SemanticKITTI(root, "train")[0]
    sample = GridSample(config["grid_size"])(sample, torch.Generator().manual_seed(0))
    return collate_scenes([sample], feat_keys=("coord", "strength"))


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    """Pointcept's ScanNet SpUNet recipe."""
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4, nesterov=True)


def _adamw(model: nn.Module) -> torch.optim.Optimizer:
    """Pointcept's outdoor SpUNet recipes (SemanticKITTI, nuScenes, Waymo)."""
    return torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=0.005)


def _segmentation_step(model: nn.Module, optimizer: torch.optim.Optimizer, forward: Callable[[], torch.Tensor],
                       labels: torch.Tensor, grad_names: Callable[[dict], dict]) -> Callable:
    """One train step; returns the logits, the loss and, for the gate, copies of the gradients
    (named as ppt's SpUNet names them)."""
    def step(gate: bool):
        optimizer.zero_grad(set_to_none=True)
        logits = forward()
        loss = F.cross_entropy(logits, labels, ignore_index=-1)
        loss.backward()
        grads = grad_names({name: p.grad.clone() for name, p in model.named_parameters()}) if gate else {}
        optimizer.step()
        return logits.detach(), loss.detach(), grads
    return _first_call_also(step)


def _check_finite_step(got) -> None:
    logits, loss, grads = got
    assert bool(torch.isfinite(loss)) and bool(torch.isfinite(logits).all()), "non-finite loss or logits"
    bad = [name for name, g in grads.items() if not bool(torch.isfinite(g).all())]
    assert not bad, f"non-finite gradients of {bad[:3]}"


def _check_same_step(got, expected) -> None:
    """Logits and loss within TOLERANCE, every parameter's gradient within GRAD_TOLERANCE of the
    baseline's relative to that gradient's norm, or to GRAD_FLOOR times the largest gradient norm
    where that is larger: the biases of Linear layers followed by a batch norm have gradients that
    are zero in exact arithmetic, and in float32 only rounding noise (PTv3: norms ~1e-7 next to ~3)."""
    torch.testing.assert_close(got[0], expected[0], rtol=TOLERANCE, atol=TOLERANCE)
    torch.testing.assert_close(got[1], expected[1], rtol=TOLERANCE, atol=TOLERANCE)
    assert got[2].keys() == expected[2].keys(), "the two models' parameters differ"
    floor = GRAD_FLOOR * max((float(torch.linalg.vector_norm(g)) for g in expected[2].values()), default=0.0)
    for name, want in expected[2].items():
        scale = max(float(torch.linalg.vector_norm(want)), floor, 1e-12)
        error = torch.linalg.vector_norm(got[2][name] - want) / scale
        assert error <= GRAD_TOLERANCE, f"gradient of {name} differs by {error:.3g} (relative norm) > {GRAD_TOLERANCE}"


def spunet_case(batch: SceneBatch, device: torch.device, repeats: int, warmup: int, *,
                name: str = "SpUNet-S train step", num_classes: int = NUM_CLASSES,
                optimizer: Callable[[nn.Module], torch.optim.Optimizer] = _sgd, **widths) -> Case:
    """SpUNet-S (or the SpUNet of ``widths``: base_channels, channels, layers) on ``batch``, with
    ``num_classes`` outputs and the ``optimizer`` of its recipe, as the case ``name``."""
    sites = batch.sparse_tensor()
    indices = sites.indices.to(device)
    features = batch.feat.to(device)
    labels = batch.segment.to(device)
    torch.manual_seed(0)
    ours = SpUNet(in_channels=features.shape[1], num_classes=num_classes, **widths).to(device).train()
    ours_optimizer = optimizer(ours)
    run = _segmentation_step(ours, ours_optimizer,
                             lambda: ours(SparseTensor(features, indices, batch_size=batch.batch_size)), labels,
                             lambda grads: grads)
    slots = 2 if isinstance(ours_optimizer, torch.optim.AdamW) else 1
    params = dict(scenes=batch.batch_size, voxels=int(indices.shape[0]), threads=torch.get_num_threads(),
                  **_state_mib(ours, optimizer_slots=slots))
    spconv, missing = spconv_or_reason(device)
    baseline_name = "spconv 1 thread" if device.type == "cpu" else "spconv"
    if spconv is None:
        baseline = Unavailable(baseline_name, *missing)
    else:
        theirs = PointceptSpUNet(spconv, features.shape[1], num_classes, **widths).to(device).train()
        report = load_weights(ours, theirs.state_dict(), format="pointcept")
        if report.missing or report.unexpected:
            raise RuntimeError(f"SpUNet-S: Pointcept's state_dict does not load one to one: {report}")
        grid_coord, offset = batch.grid_coord.to(device), batch.offset.to(device)
        spconv_run = _segmentation_step(theirs, optimizer(theirs), lambda: theirs(grid_coord, features, offset), labels,
                                        SpUNet.convert_pointcept_state_dict)

        def single_thread():
            with torch_threads(1):
                return spconv_run()

        oracle = single_thread if device.type == "cpu" else spconv_run
        baseline = Baseline(baseline_name, oracle, check=_check_same_step, target=2.0 if device.type == "cpu" else None)
    return Case(name=name, run=run, check=_check_finite_step, baselines=[baseline], params=params,
                items=(batch.batch_size, "scenes"), warmup=warmup, repeats=repeats, cpu_memory=True)


# ---------------------------------------------------------------------------------------------
# kernel maps: a LiDAR sweep against an indoor room of as many sites


def _room_like(sites: int) -> torch.Tensor:
    """``[b, x, y, z]`` sites of a synthetic indoor room voxelized at 2 cm, about ``sites`` of them
    (its point count is corrected once by the measured voxels-per-point ratio)."""
    points = sites
    for _ in range(2):
        indices = voxelize(indoor_room(points, seed=0), 0.02)[0]
        points = max(1, round(points * sites / indices.shape[0]))
    return indices


def _spunet_maps(indices: torch.Tensor) -> Callable[[], list[tuple[int, int, int]]]:
    """The kernel maps of one SpUNet-S forward: the k5 stem and a SubM k3 at the first level, then
    four k2 s2 downs each followed by its level's SubM k3. Each call returns ``(input sites, output
    sites, pairs)`` per map."""
    shape = (indices[:, 1:].amax(0) + 1).tolist()

    def run():
        sites, grid, maps = indices, shape, []
        for kernel in (5, 3):
            maps.append((sites, sparse_kernel_map(sites, 1, grid, kernel, submanifold=True)))
        for _ in range(4):
            down = sparse_kernel_map(sites, 1, grid, 2, stride=2)
            maps.append((sites, down))
            sites, grid = down[0], conv_output_shape(grid, 2, 2)
            maps.append((sites, sparse_kernel_map(sites, 1, grid, 3, submanifold=True)))
        return [(int(inputs.shape[0]), int(out.shape[0]), int(pairs.shape[1])) for inputs, (out, pairs, _) in maps]
    return run


def _check_kernel_maps(maps: list[tuple[int, int, int]]) -> None:
    """Submanifold maps keep their sites and pair each with itself at least; a k2 s2 down pairs each
    input site with its one output (sites beyond an odd grid's last window drop out, as in spconv)."""
    for number, (inputs, outputs, pairs) in enumerate(maps):
        submanifold = number < 2 or number % 2 == 1
        assert (outputs == inputs) if submanifold else (0 < outputs <= inputs), f"map {number}: {inputs} -> {outputs}"
        assert pairs >= outputs if submanifold else outputs <= pairs <= inputs, f"map {number}: {pairs} pairs"


def kernel_map_case(sweep: SceneBatch, device: torch.device, repeats: int, warmup: int) -> Case:
    """The kernel maps of SpUNet-S on the sweep's sites against those on an indoor room of as many
    sites (timing only: the maps differ; both are checked for their invariants)."""
    lidar = sweep.sparse_tensor().indices.to(device)
    room = _room_like(int(lidar.shape[0])).to(device)
    lidar_run, room_run = _spunet_maps(lidar), _spunet_maps(room)
    lidar_maps, room_maps = lidar_run(), room_run()
    _check_kernel_maps(room_maps)
    params = dict(lidar_sites=int(lidar.shape[0]), room_sites=int(room.shape[0]),
                  lidar_grid=(lidar[:, 1:].amax(0) + 1).tolist(), room_grid=(room[:, 1:].amax(0) + 1).tolist(),
                  lidar_pairs=sum(m[2] for m in lidar_maps), room_pairs=sum(m[2] for m in room_maps),
                  threads=torch.get_num_threads())
    return Case(name="kernel maps, LiDAR sweep", run=lidar_run, check=_check_kernel_maps,
                baselines=[Baseline("indoor room (as many sites)", room_run)], params=params,
                items=(int(lidar.shape[0]), "sites"), warmup=warmup, repeats=repeats)


# Point Transformer V3 on ppt against Pointcept's PTv3 file on spconv

# Pointcept's ScanNet PT-v3m1 as both models run it here (see the module docstring).
PTV3 = dict(enable_flash=False, shuffle_orders=False, drop_path=0.0)
PTV3_SCANNET = dict(order=("z", "z-trans", "hilbert", "hilbert-trans"), enc_patch_size=(1024,) * 5,
                    dec_patch_size=(1024,) * 4)


def _check_finite_logits(logits: torch.Tensor) -> None:
    assert bool(torch.isfinite(logits).all()), "non-finite logits"


def ptv3_room(quick: bool) -> SceneBatch:
    """One room of the SpUNet-S batch (the larger, 87k voxels at 2 cm)."""
    config = ROOMS[quick]
    chain = Compose([GridSample(config["grid_size"]), SphereCrop(config["point_max"]), NormalizeColor()])
    room = synthesize_room("scannet", 1, density=config["density"])
    sample = SceneSample(torch.from_numpy(room.coord), torch.from_numpy(room.color).float(),
                         torch.from_numpy(room.normal), torch.from_numpy(room.segment),
                         torch.from_numpy(room.instance), "room1", "ScanNet")
    return collate_scenes([chain(sample, torch.Generator().manual_seed(1))])


def ptv3_cases(batch: SceneBatch, device: torch.device, repeats: int, warmup: int, **architecture) -> Iterator[Case]:
    """``PTv3 train step`` and ``PTv3 forward`` on ``batch``; ``architecture`` overrides Pointcept's
    ScanNet PT-v3m1 arguments (stages, widths, patch sizes) in both models."""
    architecture = {**PTV3_SCANNET, **architecture}
    sites = batch.sparse_tensor()
    indices, features, labels = sites.indices.to(device), batch.feat.to(device), batch.segment.to(device)
    torch.manual_seed(0)
    ours = PointTransformerV3(in_channels=features.shape[1], num_classes=NUM_CLASSES, **PTV3, **architecture).to(device)
    params = dict(scenes=batch.batch_size, voxels=int(indices.shape[0]), threads=torch.get_num_threads(),
                  **_state_mib(ours, optimizer_slots=2))
    spconv, missing = spconv_or_reason(device)
    name = "Pointcept PTv3 on spconv, 1 thread" if device.type == "cpu" else "Pointcept PTv3 on spconv"
    theirs = None
    if spconv is not None:
        theirs = pointcept_ptv3(spconv, NUM_CLASSES, in_channels=features.shape[1],
                                **{k: v for k, v in PTV3.items() if k != "enable_flash"}, **architecture).to(device)
        report = load_weights(ours, theirs.state_dict(), format="pointcept")
        if report.missing or report.unexpected:
            raise RuntimeError(f"PTv3: Pointcept's state_dict does not load one to one: {report}")

    # The forward case gets its own copies: AdamW turns the rounding noise of gradients that are zero
    # in exact arithmetic (biases before a batch norm) into full-size steps, so the two trained models
    # part ways after the train-step case.
    ours_eval, theirs_eval = copy.deepcopy(ours).eval(), copy.deepcopy(theirs)

    def forward(model: nn.Module, pointcept: bool) -> Callable[[], torch.Tensor]:
        if pointcept:
            return lambda: model(point_dict(features, indices))
        return lambda: model(SparseTensor(features, indices, batch_size=batch.batch_size))

    def baseline(run: Callable, check: Callable, target: float | None):
        if theirs is None:
            return Unavailable(name, *missing)

        def single_thread():
            with torch_threads(1):
                return run()
        return Baseline(name, single_thread if device.type == "cpu" else run, check=check, target=target)

    def adamw(model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=0.006, weight_decay=0.05)

    ours.train()
    run = _segmentation_step(ours, adamw(ours), forward(ours, False), labels, lambda grads: grads)
    theirs_run = None
    if theirs is not None:
        theirs.train()
        theirs_run = _segmentation_step(theirs, adamw(theirs), forward(theirs, True), labels,
                                        PointTransformerV3.convert_pointcept_state_dict)
    yield Case(name="PTv3 train step", run=run, check=_check_finite_step,
               baselines=[baseline(theirs_run, _check_same_step, 1.5 if device.type == "cpu" else None)],
               params=params, items=(batch.batch_size, "scenes"), warmup=warmup, repeats=repeats, cpu_memory=True)

    def inference(model: nn.Module, pointcept: bool) -> Callable[[], torch.Tensor]:
        run_forward = forward(model, pointcept)

        def run_eval() -> torch.Tensor:
            with torch.no_grad():
                return run_forward()
        return run_eval

    yield Case(name="PTv3 forward", run=inference(ours_eval, False), check=_check_finite_logits,
               baselines=[baseline(inference(theirs_eval.eval(), True) if theirs is not None else None,
                                   _check_same_logits, None)],
               params=params, items=(batch.batch_size, "scenes"), warmup=warmup, repeats=repeats, cpu_memory=True)


# ---------------------------------------------------------------------------------------------
# torch.compile against eager


def _check_same_logits(got, expected) -> None:
    torch.testing.assert_close(got, expected, rtol=TOLERANCE, atol=TOLERANCE)


def compiled_case(name: str, model: nn.Module, inputs: Callable[[], tuple], items: tuple[int, str], params: dict,
                  repeats: int, warmup: int, backend: str = "inductor", fullgraph: bool = True) -> Case:
    """Inference of ``model`` (put in eval mode) compiled (``fullgraph=True``: as one graph) against
    the same module run eagerly; ``inputs()`` gives the forward's arguments of one call."""
    model.eval()
    compiled = torch.compile(model, fullgraph=fullgraph, backend=backend)

    def forward(module: Callable) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.no_grad():
                return module(*inputs())
        return run

    def check_finite(logits: torch.Tensor) -> None:
        assert bool(torch.isfinite(logits).all()), "non-finite logits"

    return Case(name=name, run=forward(compiled), check=check_finite,
                baselines=[Baseline("eager", forward(model), check=_check_same_logits, target=1.0)],
                params=params | dict(backend=backend, fullgraph=fullgraph, threads=torch.get_num_threads()), items=items,
                warmup=warmup,
                repeats=repeats)


def spunet_compiled_case(batch: SceneBatch, device: torch.device, repeats: int, warmup: int,
                         backend: str = "inductor", **widths) -> Case:
    """SpUNet-S (or the SpUNet of ``widths``) inference on ``batch``, compiled against eager."""
    indices = batch.sparse_tensor().indices.to(device)
    features = batch.feat.to(device)
    torch.manual_seed(0)
    model = SpUNet(in_channels=features.shape[1], num_classes=NUM_CLASSES, **widths).to(device)
    # The grid (spatial shape) is read from the sites outside the compiled region, as a data loader would.
    return compiled_case("SpUNet-S forward, torch.compile", model,
                         lambda: (SparseTensor(features, indices, batch_size=batch.batch_size),),
                         (batch.batch_size, "scenes"), dict(scenes=batch.batch_size, voxels=int(indices.shape[0])),
                         repeats, warmup, backend)


def point_mae_compiled_case(points: torch.Tensor, repeats: int, warmup: int, backend: str = "inductor",
                            **sizes) -> Case:
    """The Point-MAE classifier (``sizes`` as for :func:`ppt.models.create_object_classifier`)
    inference on ``points`` ``(B, N, 3)``, compiled against eager."""
    torch.manual_seed(0)
    model = create_object_classifier("full", **sizes).to(points.device)
    return compiled_case("Point-MAE forward, torch.compile", model, lambda: (points,), (points.shape[0], "objects"),
                         dict(batch=points.shape[0], points=points.shape[1]), repeats, warmup, backend)


def ptv3_compiled_case(batch: SceneBatch, device: torch.device, repeats: int, warmup: int,
                       backend: str = "inductor", **architecture) -> Case:
    """PTv3 (Pointcept's ScanNet PT-v3m1, or ``architecture``) inference on ``batch``, compiled
    against eager. Not as one graph: the serialization depth and the patch layout are sizes read
    from the data on the host at every level (as Pointcept's model does), so the graph breaks there."""
    indices = batch.sparse_tensor().indices.to(device)
    features = batch.feat.to(device)
    torch.manual_seed(0)
    model = PointTransformerV3(in_channels=features.shape[1], num_classes=NUM_CLASSES, **PTV3,
                               **{**PTV3_SCANNET, **architecture}).to(device)
    return compiled_case("PTv3 forward, torch.compile", model,
                         lambda: (SparseTensor(features, indices, batch_size=batch.batch_size),),
                         (batch.batch_size, "scenes"), dict(scenes=batch.batch_size, voxels=int(indices.shape[0])),
                         repeats, warmup, backend, fullgraph=False)


# ---------------------------------------------------------------------------------------------
# DAPT against full fine-tuning of Point-MAE


def object_batch(quick: bool, sizes: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, N, 3)`` synthetic objects (the classes in turn) and their labels; ``sizes``
    (``batch``, ``points``) defaults to :data:`OBJECTS`."""
    config = sizes or OBJECTS[quick]
    rng = np.random.default_rng(0)
    labels = [i % len(SCANOBJECTNN_CLASSES) for i in range(config["batch"])]
    points = np.stack([synthesize_object(label, rng, config["points"])[0] for label in labels])
    return torch.from_numpy(points), torch.tensor(labels)


@dataclass
class _Classifier:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    trainable: list[str]


def _classifier(peft: str, device: torch.device, sizes: dict) -> _Classifier:
    """The object classifier and the official fine-tuning optimizer (AdamW 5e-4, wd 0.05) over its
    trainable parameters."""
    torch.manual_seed(0)
    model = create_object_classifier(peft, **sizes).to(device).train()
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4, weight_decay=0.05)
    return _Classifier(model, optimizer, trainable)


def _classification_step(c: _Classifier, points: torch.Tensor, labels: torch.Tensor) -> Callable:
    """One classification train step (see :func:`train_step`)."""
    return train_step(c, lambda: F.cross_entropy(c.model(points), labels))


def train_step(c: _Classifier, compute_loss: Callable[[], torch.Tensor]) -> Callable:
    """One train step of ``c`` on the loss ``compute_loss()`` (gradient clipping at 10, as the
    official configs); returns the loss and, for the gate, which parameters received a gradient and
    whether all gradients are finite."""
    parameters = [p for p in c.model.parameters() if p.requires_grad]

    def step(gate: bool):
        c.optimizer.zero_grad(set_to_none=True)
        loss = compute_loss()
        loss.backward()
        with_grad = [name for name, p in c.model.named_parameters() if p.grad is not None] if gate else []
        finite = all(bool(torch.isfinite(p.grad).all()) for p in parameters) if gate else True
        torch.nn.utils.clip_grad_norm_(parameters, 10.0)
        c.optimizer.step()
        return loss.detach(), with_grad, finite
    return _first_call_also(step)


def _check_trains_exactly(c: _Classifier) -> Callable:
    def check(got) -> None:
        loss, with_grad, finite = got
        assert bool(torch.isfinite(loss)) and finite, "non-finite loss or gradients"
        assert with_grad == c.trainable, "the parameters with a gradient are not exactly the trainable ones"
    return check


def dapt_case(points: torch.Tensor, labels: torch.Tensor, repeats: int, warmup: int, **sizes) -> Case:
    """DAPT against full fine-tuning on ``points`` ``(B, N, 3)``; ``sizes`` are passed to
    :func:`ppt.models.create_object_classifier` (default: Point-MAE's 12 x 384 x 6, 15 classes)."""
    dapt, full = _classifier("dapt", points.device, sizes), _classifier("full", points.device, sizes)
    check_full = _check_trains_exactly(full)
    params = dict(batch=points.shape[0], points=points.shape[1], threads=torch.get_num_threads())
    for name, c in (("dapt", dapt), ("full", full)):
        count = c.model.parameter_count()
        params |= {f"{name}_trainable": count.trainable, f"{name}_parameters": count.total,
                   **{f"{name}_{key}": value for key, value in _state_mib(c.model, optimizer_slots=2).items()}}
    run_full = _classification_step(full, points, labels)
    case = Case(
        name="DAPT vs full fine-tune train step", run=_classification_step(dapt, points, labels),
        check=_check_trains_exactly(dapt),
        baselines=[Baseline("Point-MAE full fine-tune", run_full, check=lambda _, got: check_full(got),
                            target=1.0, memory_target=0.65)],
        params=params, items=(points.shape[0], "objects"), warmup=warmup, repeats=repeats, cpu_memory=True)
    return case


# The DAPT transfer experiment (bench/experiments/dapt_transfer.py): its transformer and the
# settings every method shares there, and its batch (quick: a smaller batch of the same model).
TRANSFER_MODEL = dict(num_groups=32, group_size=32, depth=4, dim=128, heads=4, drop_path=0.1, adapter_dropout=0.0)
TRANSFER_OBJECTS = {False: dict(batch=32, points=512), True: dict(batch=2, points=512)}
TRANSFER_CASE = "fine-tuning step at the transfer size"


def peft_cases(points: torch.Tensor, labels: torch.Tensor, repeats: int, warmup: int,
               methods: tuple[str, ...] = PEFT_METHODS, **sizes) -> Iterator[Case]:
    """``f"{TRANSFER_CASE}: {method}"`` for each of ``methods`` but ``full``: one train step of
    :func:`ppt.models.create_object_classifier` with that method against full fine-tuning of the
    same model, on ``points`` ``(B, N, 3)``; ``sizes`` default to :data:`TRANSFER_MODEL`. The
    parameter counts give the head (``cls_head_finetune.*``) apart."""
    sizes = {**TRANSFER_MODEL, **sizes}
    params = dict(batch=points.shape[0], points=points.shape[1], threads=torch.get_num_threads(), **sizes)
    for method in methods:
        if method == "full":
            continue
        tuned, full = _classifier(method, points.device, sizes), _classifier("full", points.device, sizes)
        check_full = _check_trains_exactly(full)
        counts = {}
        for name, c in ((method, tuned), ("full", full)):
            head = sum(p.numel() for n, p in c.model.named_parameters() if n.startswith("cls_head_finetune."))
            count = c.model.parameter_count()
            counts |= {f"{name}_trainable": count.trainable, f"{name}_parameters": count.total, f"{name}_head": head,
                       **{f"{name}_{key}": value for key, value in _state_mib(c.model, optimizer_slots=2).items()}}
        yield Case(name=f"{TRANSFER_CASE}: {method}", run=_classification_step(tuned, points, labels),
                   check=_check_trains_exactly(tuned),
                   baselines=[Baseline("full fine-tune", _classification_step(full, points, labels),
                                       check=lambda _, got, check=check_full: check(got))],
                   params=params | {"method": method} | counts, items=(points.shape[0], "objects"), warmup=warmup,
                   repeats=repeats, cpu_memory=True)


# --quick: every model at a reduced width and depth as well as on smaller data, so that the pass
# takes minutes on a CPU (SpUNet: QUICK_SPUNET); the issues' targets and the docs' figures are of the
# full sizes.
QUICK_PTV3 = dict(stride=(2, 2), enc_depths=(1, 1, 1), enc_channels=(16, 32, 64), enc_num_head=(1, 2, 4),
                  enc_patch_size=(128,) * 3, dec_depths=(1, 1), dec_channels=(16, 32), dec_num_head=(1, 2),
                  dec_patch_size=(128,) * 2)
QUICK_POINT_MAE = dict(depth=4, dim=128, heads=4)
QUICK_POINT_MAE_PARTSEG = dict(trans_dim=96, num_heads=4)  # depth stays 12: the model reads blocks 3, 7 and 11


def cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    repeats, warmup = (3, 1) if quick else (5, 1)
    spunet, ptv3, point_mae, partseg = ((QUICK_SPUNET, QUICK_PTV3, QUICK_POINT_MAE, QUICK_POINT_MAE_PARTSEG) if quick
                                        else ({}, {}, {}, {}))
    rooms = room_batch(quick)
    yield spunet_case(rooms, device, repeats, warmup, **spunet)
    sweep = sweep_batch(quick)
    yield spunet_case(sweep, device, repeats, warmup, name="SpUNet-S train step, LiDAR sweep",
                      num_classes=SWEEP_CLASSES, optimizer=_adamw, **spunet)
    yield kernel_map_case(sweep, device, repeats, warmup)
    yield spunet_compiled_case(rooms, device, repeats, warmup, **spunet)
    ptv3_batch = ptv3_room(quick)
    yield from ptv3_cases(ptv3_batch, device, repeats, warmup, **ptv3)
    yield ptv3_compiled_case(ptv3_batch, device, repeats, warmup, **ptv3)
    points, labels = object_batch(quick)
    yield dapt_case(points.to(device), labels.to(device), repeats, warmup, **point_mae)
    yield point_mae_compiled_case(points.to(device), repeats, warmup, **point_mae)
    transfer_points, transfer_labels = object_batch(quick, TRANSFER_OBJECTS[quick])
    yield from peft_cases(transfer_points.to(device), transfer_labels.to(device), repeats, warmup)
    from ppt.bench.partseg import partseg_dapt_case
    from ppt.bench.pointmlp import pointmlp_cases
    from ppt.bench.ppt_step import ppt_step_cases
    from ppt.bench.unipre3d import unipre3d_cases

    yield partseg_dapt_case(device, quick, repeats, warmup, **partseg)
    yield from pointmlp_cases(device, dtype, quick)
    yield from ppt_step_cases(device, dtype, quick)
    yield from unipre3d_cases(device, dtype, quick)
