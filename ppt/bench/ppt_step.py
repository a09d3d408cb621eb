"""Point Prompt Training step (issue 11), a case of the ``models`` suite.

Target: one training step (forward, loss, backward) of PPT SpUNet-S with PDNorm, 3 datasets
(Structured3D, ScanNet, S3DIS), a language-guided head over a 512-d text table (CLIP ViT-B/16's
width; random unit rows, as the step's cost does not depend on their values), takes at most 1.1x
the step of the plain SpUNet-S (batch norm, a linear head over 25 classes) on the same batch:
three indoor rooms, each labelled with a dataset's classes. Two cases: a single-dataset batch
(the three rooms all ScanNet) and a mixed batch (one room per dataset, per-point condition ids).
The trainable parameters of both models are reported in the case parameters.

Correctness before timing: the PPT model is built with zero-init prompt parts and the plain
model's weights in every condition's norm, so on a single-dataset batch its backbone features
equal the plain SpUNet's; on the mixed batch they equal the features of each room run alone
under its own condition (PDNorm's per-dataset statistics).

Run: ``ppt bench models [--quick] [--device cpu|cuda]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ppt.bench.harness import Baseline, Case
from ppt.bench.spconv_reference import QUICK_SPUNET
from ppt.data import S3DIS_CLASSES, SCANNET_CLASSES, STRUCTURED3D_CLASSES
from ppt.data.synthetic import indoor_room
from ppt.models import PointPromptTraining, SpUNet
from ppt.ops import voxelize
from ppt.sparse import SparseTensor
from ppt.text import TextTable

__all__ = ["ppt_step_cases"]

CONDITIONS = ("Structured3D", "ScanNet", "S3DIS")
CLASS_NAMES = {"Structured3D": STRUCTURED3D_CLASSES, "ScanNet": SCANNET_CLASSES, "S3DIS": S3DIS_CLASSES}
ROOM_POINTS = {False: 40_000, True: 1_500}  # per room; three rooms a batch
VOXEL_SIZE = 0.02
TEXT_DIM = 512
TARGET = 1 / 1.1  # plain step time / PPT step time: PPT at most 1.1x slower


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_batch(quick: bool, device: torch.device) -> tuple[SparseTensor, torch.Tensor]:
    """Three voxelised rooms with random colour + normal features, and their room of every row."""
    coord = torch.cat([indoor_room(ROOM_POINTS[quick], seed=seed) for seed in range(3)])
    room = torch.arange(3).repeat_interleave(ROOM_POINTS[quick])
    indices = voxelize(coord, VOXEL_SIZE, batch=room)[0]
    features = torch.randn(indices.shape[0], 6, generator=torch.Generator().manual_seed(0))
    x = SparseTensor(features.to(device), indices.to(device), batch_size=3)
    return x, indices[:, 0].long().to(device)


class PlainStep(nn.Module):
    """SpUNet-S (batch norm) and a linear head over the 25 classes of the largest dataset."""

    def __init__(self, **widths) -> None:
        super().__init__()
        self.backbone = SpUNet(in_channels=6, num_classes=0, **widths)
        self.head = nn.Linear(self.backbone.out_channels, len(STRUCTURED3D_CLASSES))


def make_models(device: torch.device, **widths) -> tuple[PlainStep, PointPromptTraining]:
    """The two models on ``device``; ``widths`` (base_channels, channels, layers) replace SpUNet-S's."""
    torch.manual_seed(0)
    plain = PlainStep(**widths)
    names = tuple(dict.fromkeys(n for names in CLASS_NAMES.values() for n in names))
    text = TextTable(F.normalize(torch.randn(len(names), TEXT_DIM, generator=torch.Generator().manual_seed(1)), dim=1),
                     names, {"provider": "random", "dim": TEXT_DIM})
    prompted = PointPromptTraining(CONDITIONS, CLASS_NAMES, in_channels=6, head="lang", adapter="pdnorm", text=text,
                                   zero_init=True, **widths)
    state = prompted.backbone.state_dict()
    for key, value in plain.backbone.state_dict().items():  # PDNorm rows = the BN's, every condition
        state[key] = value.expand_as(state[key]).clone() if state[key].dim() == value.dim() + 1 else value
    prompted.backbone.load_state_dict(state)
    return plain.to(device).train(), prompted.to(device).train()


def labels(room: torch.Tensor, conditions: tuple[str, ...]) -> torch.Tensor:
    """Random labels of each room within its dataset's classes (fixed seed)."""
    generator = torch.Generator().manual_seed(2)
    counts = torch.tensor([len(CLASS_NAMES[c]) for c in conditions])
    return (torch.rand(room.shape[0], generator=generator) * counts[room.cpu()]).long().to(room.device)


def plain_step(model: PlainStep, x: SparseTensor, target: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    features = model.backbone(x)
    F.cross_entropy(model.head(features), target).backward()
    return features.detach()


def ppt_step(model: PointPromptTraining, x: SparseTensor, target: torch.Tensor, condition) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    captured = []
    hook = model.backbone.register_forward_hook(lambda module, inputs, output: captured.append(output.detach()))
    try:
        logits = model(x, condition)
    finally:
        hook.remove()
    model.loss(logits, target, condition).backward()
    return captured[0]


def _features_alone(model: PointPromptTraining, x: SparseTensor, room: torch.Tensor) -> torch.Tensor:
    """Backbone features of each room run as its own single-dataset batch, in ``x``'s row order."""
    features = torch.empty(x.features.shape[0], model.backbone.out_channels, device=x.features.device)
    with torch.no_grad():
        for r, condition in enumerate(CONDITIONS):
            rows = room == r
            indices = x.indices[rows].clone()
            indices[:, 0] = 0
            features[rows] = model.forward_features(SparseTensor(x.features[rows], indices, batch_size=1), condition)
    return features


def ppt_step_cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    if dtype != torch.float32:
        return
    x, room = make_batch(quick, device)
    plain, prompted = make_models(device, **(QUICK_SPUNET if quick else {}))
    params = dict(rooms=3, voxels=int(x.features.shape[0]), text_dim=TEXT_DIM, ppt_trainable=trainable(prompted),
                  plain_trainable=trainable(plain))
    single_target = labels(room, ("ScanNet",) * 3)
    mixed_target = labels(room, CONDITIONS)
    mixed_condition = room.clone()  # room r is condition r

    def same_features(got, base) -> None:
        # Batch norm and PDNorm reduce in different orders; through SpUNet-S's ~40 conv + norm layers
        # the float32 rounding grows (full size: relative L2 difference 7e-5, single entries near
        # ReLU's kink off by 2e-2; in float64 the two agree to 1e-14), so judge the whole feature map.
        error = ((got.double() - base.double()).norm() / base.double().norm()).item()
        assert error <= 1e-3, f"backbone features differ by {error:.2e} (relative L2 norm; at most 1e-3 expected)"

    yield Case(
        name="ppt step single-dataset batch (PDNorm, 3 datasets)",
        run=lambda: ppt_step(prompted, x, single_target, "ScanNet"),
        baselines=[Baseline("plain SpUNet-S step", lambda: plain_step(plain, x, single_target), check=same_features,
                            target=TARGET)],
        params={**params, "batch": "single"}, items=(int(x.features.shape[0]), "voxels"),
        warmup=1, repeats=3 if quick else 7)
    alone = _features_alone(prompted, x, room)
    yield Case(
        name="ppt step mixed batch (PDNorm, 3 datasets)",
        run=lambda: ppt_step(prompted, x, mixed_target, mixed_condition),
        check=lambda got: same_features(got, alone),
        baselines=[Baseline("plain SpUNet-S step", lambda: plain_step(plain, x, mixed_target), target=TARGET)],
        params={**params, "batch": "mixed"}, items=(int(x.features.shape[0]), "voxels"),
        warmup=1, repeats=3 if quick else 7)
