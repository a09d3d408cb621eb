"""The part-segmentation case of the ``models`` suite: DAPT against full fine-tuning of
:class:`ppt.models.PointMAEPartSeg`, one training step each (Point-MAE's segmentation recipe:
AdamW lr 2e-4, weight decay 0.05, gradient clipping at 10, NLL of the log-probabilities) on the
same batch of synthetic ShapeNetPart objects (:mod:`ppt.data.objects.synthetic_parts`), 2,048
points drawn per object as the official loader does (sizes: :data:`PARTS_BATCH`). The gate checks each step: a finite loss
and gradients on exactly the trainable parameters."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ppt.bench.harness import Baseline, Case
from ppt.bench.models import _check_trains_exactly, _Classifier, _state_mib, train_step
from ppt.data.objects.shapenet_part import SHAPENETPART_CATEGORIES, pc_normalize
from ppt.data.objects.synthetic_parts import synthesize_part_object
from ppt.models import PointMAEPartSeg

__all__ = ["PARTS_BATCH", "part_batch", "partseg_dapt_case"]

PARTS_BATCH = {False: dict(batch=16, points=2048), True: dict(batch=2, points=256)}
"""Objects per batch and points per object (full: Point-MAE's batch 16 x 2048)."""


def part_batch(quick: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``xyz (B, N, 3)``, categories ``(B,)`` (in turn) and part labels ``(B, N)``."""
    config = PARTS_BATCH[quick]
    rng = np.random.default_rng(0)
    categories = [i % len(SHAPENETPART_CATEGORIES) for i in range(config["batch"])]
    rows = [synthesize_part_object(category, rng, config["points"] + config["points"] // 4) for category in categories]
    drawn = [row[rng.choice(len(row), config["points"], replace=True)] for row in rows]
    xyz = torch.stack([pc_normalize(torch.from_numpy(row[:, :3]).float()) for row in drawn])
    parts = torch.from_numpy(np.stack([row[:, 6] for row in drawn]).astype(np.int64))
    return xyz.to(device), torch.tensor(categories, device=device), parts.to(device)


def _part_model(peft: str, device: torch.device, sizes: dict) -> _Classifier:
    torch.manual_seed(0)
    model = PointMAEPartSeg(peft=peft, **sizes).to(device).train()
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.05)
    return _Classifier(model, optimizer, trainable)


def partseg_dapt_case(device: torch.device, quick: bool, repeats: int, warmup: int, **sizes) -> Case:
    """DAPT against full fine-tuning; ``sizes`` go to :class:`PointMAEPartSeg` (default: the official model)."""
    xyz, categories, parts = part_batch(quick, device)
    models = {peft: _part_model(peft, device, sizes) for peft in ("dapt", "full")}

    def step(c: _Classifier):
        return train_step(c, lambda: F.nll_loss(c.model(xyz, categories).flatten(0, 1), parts.flatten()))

    params = dict(batch=xyz.shape[0], points=xyz.shape[1], threads=torch.get_num_threads())
    for name, c in models.items():
        count = c.model.parameter_count()
        params |= {f"{name}_trainable": count.trainable, f"{name}_parameters": count.total,
                   **{f"{name}_{key}": value for key, value in _state_mib(c.model, optimizer_slots=2).items()}}
    check_full = _check_trains_exactly(models["full"])
    return Case(
        name="part-seg DAPT vs full fine-tune train step", run=step(models["dapt"]),
        check=_check_trains_exactly(models["dapt"]),
        baselines=[Baseline("Point-MAE part-seg full fine-tune", step(models["full"]),
                            check=lambda _, got: check_full(got), memory_target=1.0)],
        params=params, items=(xyz.shape[0], "objects"), warmup=warmup, repeats=repeats, cpu_memory=True)
