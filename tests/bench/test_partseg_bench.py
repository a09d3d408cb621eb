"""The part-segmentation DAPT vs full fine-tune case of the ``models`` suite, smoke-sized."""

import pytest
import torch

from ppt.bench import partseg
from ppt.bench.harness import measure, peak_resident_bytes
from ppt.bench.models import _check_trains_exactly, train_step
from ppt.data import SHAPENETPART_CATEGORIES, SHAPENETPART_PARTS

CPU = torch.device("cpu")
TINY = dict(trans_dim=24, num_heads=2, group_size=8, num_group=16)


def test_batch_holds_each_category_with_its_parts():
    xyz, categories, parts = partseg.part_batch(True, CPU)
    assert xyz.shape == (2, 256, 3) and categories.tolist() == [0, 1] and parts.shape == (2, 256)
    for row, category in zip(parts, categories.tolist()):
        assert set(row.tolist()) <= set(SHAPENETPART_PARTS[SHAPENETPART_CATEGORIES[category]])
    assert xyz.norm(dim=-1).max() <= 1.0 + 1e-6


def test_case_trains_exactly_the_dapt_parameters_and_judges_memory():
    torch.set_num_threads(1)
    case = partseg.partseg_dapt_case(CPU, True, repeats=2, warmup=1, **TINY)
    assert case.params["dapt_trainable"] < case.params["full_trainable"] == case.params["full_parameters"]
    result = measure(case, "models", CPU)
    full = result.baselines[0]
    assert result.status == "ok", result.error
    assert full.checked and full.memory_target == 1.0
    if peak_resident_bytes(lambda: None) is not None:
        assert full.memory_ratio == pytest.approx(result.ppt.peak_bytes / full.timing.peak_bytes)
    # a model whose frozen parameters receive gradients fails the gate
    dapt = partseg._part_model("dapt", CPU, TINY)
    next(p for p in dapt.model.parameters() if not p.requires_grad).requires_grad_(True)
    xyz, categories, parts = partseg.part_batch(True, CPU)
    got = train_step(dapt, lambda: torch.nn.functional.nll_loss(dapt.model(xyz, categories).flatten(0, 1),
                                                                parts.flatten()))()
    with pytest.raises(AssertionError, match="not exactly the trainable ones"):
        _check_trains_exactly(dapt)(got)
