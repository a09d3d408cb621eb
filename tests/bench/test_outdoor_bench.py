"""The outdoor cases of ``ppt bench models``, smoke-sized: SpUNet on a LiDAR sweep against
Pointcept's SpUNet on spconv (same weights, AdamW), and the kernel maps of a sweep against an indoor
room of as many sites."""

import importlib.util

import pytest
import torch

from ppt.bench import models
from ppt.bench.harness import measure
from ppt.data import SemanticKITTI, collate_scenes, write_synthetic_sweeps
from ppt.data.transforms import GridSample

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = torch.device("cpu")
SMALL = dict(base_channels=8, channels=(8, 16, 16, 24, 16, 16, 8, 8), layers=(1, 2, 1, 2, 1, 1, 2, 1))


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    write_synthetic_sweeps(root, "semantickitti", 2, azimuth_steps=24)
    sample = GridSample(0.05)(SemanticKITTI(root, "train")[0], torch.Generator().manual_seed(0))
    return collate_scenes([sample], feat_keys=("coord", "strength"))


@pytest.mark.skipif(importlib.util.find_spec("spconv") is None,
                    reason="spconv (CPU wheel, `test` extra) is not installed")
def test_sweep_train_step_matches_spconv_with_adamw(tiny_sweep):
    case = models.spunet_case(tiny_sweep, CPU, repeats=1, warmup=0, name="SpUNet-S train step, LiDAR sweep",
                              num_classes=models.SWEEP_CLASSES, optimizer=models._adamw, **SMALL)
    assert case.name == "SpUNet-S train step, LiDAR sweep" and case.params["optimizer_state_mib"] > 0
    result = measure(case, "models", CPU)
    oracle = result.baselines[0]
    assert result.status == "ok", result.error
    assert oracle.name == "spconv 1 thread" and oracle.checked and oracle.target == 2.0
    logits, _, _ = case.run()
    assert logits.shape == (tiny_sweep.coord.shape[0], 19)


def test_kernel_map_case_compares_a_sweep_with_a_room_of_as_many_sites(tiny_sweep):
    case = models.kernel_map_case(tiny_sweep, CPU, repeats=1, warmup=0)
    sites = tiny_sweep.coord.shape[0]
    assert case.params["lidar_sites"] == sites and abs(case.params["room_sites"] - sites) <= 0.05 * sites
    assert case.params["lidar_grid"][0] > 5 * case.params["room_grid"][0]  # a sweep spreads over tens of metres
    maps = case.run()
    assert len(maps) == 10 and maps[0][:2] == (sites, sites)
    result = measure(case, "models", CPU)
    assert result.status == "ok" and result.baselines[0].name == "indoor room (as many sites)"
    with pytest.raises(AssertionError, match="map 2"):
        models._check_kernel_maps([*maps[:2], (maps[2][0], maps[2][1], maps[2][0] + 1), *maps[3:]])
