"""The train-step benchmark cases, smoke-sized: the drop-in SpUNet train step of ``sparse_conv``,
the SpUNet, PTv3 and DAPT cases of ``models``, and the peak-memory measurement they report."""

import importlib.util

import numpy as np
import pytest
import torch

import ppt.spconv
from ppt.bench import models, sparse_conv
from ppt.bench.harness import measure, peak_resident_bytes
from ppt.bench.report import table
from ppt.bench.spconv_reference import spconv_or_reason
from ppt.data import SceneSample, collate_scenes
from ppt.data.rooms import synthesize_room
from ppt.data.transforms import Compose, GridSample, NormalizeColor

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = torch.device("cpu")
HAS_SPCONV = importlib.util.find_spec("spconv") is not None
needs_spconv = pytest.mark.skipif(not HAS_SPCONV, reason="spconv (CPU wheel, in the `test` extra) is not installed")
SMALL = dict(base_channels=8, channels=(8, 16, 16, 24, 16, 16, 8, 8), layers=(1, 2, 1, 2, 1, 1, 2, 1))
LINUX_PROC = peak_resident_bytes(lambda: None) is not None


@pytest.mark.skipif(not LINUX_PROC, reason="peak resident memory needs Linux's /proc")
def test_peak_resident_bytes_sees_a_short_lived_allocation():
    size = 64 * 2**20

    def touch():
        buffer = torch.ones(size // 4)  # written, so resident
        del buffer

    assert peak_resident_bytes(touch) >= 0.9 * size
    assert peak_resident_bytes(lambda: None) < size / 4


def _small_sites():
    coords = torch.unique(torch.randint(0, 40, (3000, 3)), dim=0)
    indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1).int()
    return indices, [40, 40, 40]


@needs_spconv
def test_dropin_train_step_case_matches_spconv():
    network = sparse_conv.Network("small Pointcept", 6, lambda lib: sparse_conv.PointceptOnSites(lib, **SMALL),
                                  targets={("cpu", "train step"): 2.5}, ppt_lib=ppt.spconv, passes=("train step",))
    indices, shape = _small_sites()
    features = torch.randn(len(indices), 6)
    labels = torch.randint(sparse_conv.NUM_CLASSES, (len(indices),))
    (case,) = sparse_conv.network_cases(network, indices, shape, features, labels, spconv_or_reason(CPU), 2, 1)
    assert case.name == "small Pointcept train step"
    result = measure(case, "sparse_conv", CPU)
    oracle = result.baselines[0]
    assert result.status == "ok" and oracle.name == "spconv 1 thread" and oracle.checked and oracle.target == 2.5
    # The gate compares gradients: a model that trains other weights than spconv's is refused.
    _, _, _, grads = case.run()
    assert grads.numel() == sum(p.numel() for p in network.build(ppt.spconv).parameters())
    check = sparse_conv._check_train_step(1e-3)
    got = case.run()
    with pytest.raises(AssertionError, match="parameter gradients differ"):
        check(got, (*got[:3], got[3] * 1.05))


def _tiny_rooms():
    chain = Compose([GridSample(0.2), NormalizeColor()])
    samples = []
    for seed in (0, 1):
        room = synthesize_room("scannet", seed, density=0.05)
        sample = SceneSample(torch.from_numpy(room.coord), torch.from_numpy(room.color).float(),
                             torch.from_numpy(room.normal), torch.from_numpy(room.segment),
                             torch.from_numpy(room.instance), f"room{seed}", "ScanNet")
        samples.append(chain(sample, torch.Generator().manual_seed(seed)))
    return collate_scenes(samples)


@needs_spconv
@pytest.mark.slow
def test_ptv3_cases_check_parity_with_pointcepts_file():
    tiny = dict(stride=(2, 2), enc_depths=(1, 1, 1), enc_channels=(8, 16, 16), enc_num_head=(1, 2, 2),
                enc_patch_size=(64,) * 3, dec_depths=(1, 1), dec_channels=(8, 16), dec_num_head=(2, 2),
                dec_patch_size=(64,) * 2)
    step, forward = models.ptv3_cases(models.ptv3_room(quick=True), CPU, repeats=1, warmup=0, **tiny)
    assert (step.name, forward.name) == ("PTv3 train step", "PTv3 forward")
    for case in (step, forward):
        result = measure(case, "models", CPU)
        assert result.status == "ok" and result.baselines[0].checked
    assert step.baselines[0].target == 1.5
    # the gate sees a wrong gradient
    fresh, _ = models.ptv3_cases(models.ptv3_room(quick=True), CPU, repeats=1, warmup=0, **tiny)
    (logits, loss, grads), expected = fresh.run(), fresh.baselines[0].run()
    name = "enc.enc1.block0.attn.qkv.weight"
    with pytest.raises(AssertionError, match=f"gradient of {name} differs"):
        models._check_same_step((logits, loss, grads | {name: grads[name] * 1.2}), expected)


@needs_spconv
def test_spunet_case_checks_parity_and_reports_memory():
    case = models.spunet_case(_tiny_rooms(), CPU, repeats=2, warmup=1, **SMALL)
    assert case.items == (2, "scenes") and case.cpu_memory
    result = measure(case, "models", CPU)
    oracle = result.baselines[0]
    assert result.status == "ok" and oracle.checked and oracle.target == 2.0
    if LINUX_PROC:
        assert result.ppt.peak_bytes > 0 and oracle.timing.peak_bytes > 0 and oracle.memory_ratio > 0
        assert "peak MiB" in table([result])
    # The first step's gradients (kept for the gate) match spconv's; a parity failure names the gradient.
    fresh = models.spunet_case(_tiny_rooms(), CPU, repeats=1, warmup=0, **SMALL)
    (logits, loss, grads), expected = fresh.run(), fresh.baselines[0].run()
    models._check_same_step((logits, loss, grads), expected)
    name = "enc.1.block0.conv2.weight"
    with pytest.raises(AssertionError, match=f"gradient of {name} differs"):
        models._check_same_step((logits, loss, grads | {name: grads[name] * 1.2}), expected)


def test_dapt_case_trains_exactly_the_adapters_and_judges_memory():
    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.standard_normal((2, 256, 3)).astype(np.float32))
    sizes = dict(num_groups=16, group_size=8, depth=2, dim=48, heads=6, rank=8)
    case = models.dapt_case(points, torch.tensor([0, 1]), repeats=2, warmup=1, **sizes)
    assert case.params["dapt_trainable"] < case.params["full_trainable"] == case.params["full_parameters"]
    result = measure(case, "models", CPU)
    full = result.baselines[0]
    assert result.status == "ok" and full.target == 1.0 and full.memory_target == 0.65
    if LINUX_PROC:
        assert full.memory_ratio == pytest.approx(result.ppt.peak_bytes / full.timing.peak_bytes)
        assert full.meets_memory_target == (full.memory_ratio <= 0.65)
        assert "memory" in table([result])
    # A classifier whose frozen parameters receive gradients fails the check.
    dapt = models._classifier("dapt", CPU, sizes)
    next(p for p in dapt.model.parameters() if not p.requires_grad).requires_grad_(True)
    got = models._classification_step(dapt, points, torch.tensor([0, 1]))()
    with pytest.raises(AssertionError, match="not exactly the trainable ones"):
        models._check_trains_exactly(dapt)(got)


def test_peft_cases_time_every_method_against_full_fine_tuning_with_the_head_apart():
    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.standard_normal((2, 128, 3)).astype(np.float32))
    sizes = dict(num_groups=8, group_size=8, depth=1, dim=24, heads=2)
    cases = list(models.peft_cases(points, torch.tensor([0, 1]), repeats=1, warmup=0, **sizes))
    assert [case.name for case in cases] == [f"{models.TRANSFER_CASE}: {m}" for m in
                                             ("linear", "bitfit", "lora", "adaptformer", "vpt_deep", "dapt")]
    for case in cases:
        method = case.params["method"]
        assert case.params["drop_path"] == 0.1 and case.params["adapter_dropout"] == 0.0  # the same for every method
        # DAPT's head reads three features (cls, mean of prompts, max of patches), the others two
        head, full_head = case.params[f"{method}_head"], case.params["full_head"]
        assert head > full_head > 0 if method == "dapt" else head == full_head > 0
        assert case.params[f"{method}_trainable"] < case.params["full_trainable"] == case.params["full_parameters"]
    assert cases[0].params["linear_trainable"] == cases[0].params["linear_head"]  # linear probing trains the head only
    result = measure(cases[-1], "models", CPU)
    full = result.baselines[0]
    assert result.status == "ok" and full.status == "ok" and full.checked and full.target is None
    if LINUX_PROC:
        assert full.memory_ratio == pytest.approx(result.ppt.peak_bytes / full.timing.peak_bytes)


def test_compiled_cases_compare_compiled_with_eager_logits():
    torch._dynamo.reset()
    spunet = models.spunet_compiled_case(_tiny_rooms(), CPU, repeats=2, warmup=1, backend="aot_eager", **SMALL)
    points = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 256, 3)).astype(np.float32))
    mae = models.point_mae_compiled_case(points, repeats=2, warmup=1, backend="aot_eager", num_groups=16, group_size=8,
                                         depth=2, dim=48, heads=6)
    ptv3 = models.ptv3_compiled_case(_tiny_rooms(), CPU, repeats=2, warmup=1, backend="aot_eager", stride=(2,),
                                     enc_depths=(1, 1), enc_channels=(8, 16), enc_num_head=(1, 2),
                                     enc_patch_size=(32, 32), dec_depths=(1,), dec_channels=(8,), dec_num_head=(1,),
                                     dec_patch_size=(32,))
    for case, unit, fullgraph in ((spunet, "scenes", True), (mae, "objects", True), (ptv3, "scenes", False)):
        result = measure(case, "models", CPU)
        eager = result.baselines[0]
        assert result.status == "ok", result.error
        assert eager.name == "eager" and eager.checked and eager.target == 1.0 and eager.speedup > 0
        assert case.items == (2, unit) and case.params["backend"] == "aot_eager"
        assert case.params["fullgraph"] is fullgraph
    # The gate refuses logits that differ from eager's.
    logits = mae.run()
    with pytest.raises(AssertionError):
        mae.baselines[0].check(logits, logits + 1e-2)
    torch._dynamo.reset()
