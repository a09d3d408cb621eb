"""SpUNet: parameter count, shapes, PDNorm conditions, and logits equal to Pointcept's SpUNet-v1m1
built on spconv 2.3.8 (the oracle), loaded from a checkpoint in Pointcept's layout."""

import importlib.util
from collections import OrderedDict

import pytest
import torch
from torch import nn

from ppt.bench.spconv_reference import PointceptSpUNet, import_spconv
from ppt.data import SceneSample, collate_scenes
from ppt.data.scenes.rooms import synthesize_room
from ppt.data.scenes.transforms import Compose, GridSample, NormalizeColor
from ppt.models import SpUNet, load_weights
from ppt.sparse import SparseTensor

pytestmark = pytest.mark.usefixtures("single_thread")

HAS_SPCONV = importlib.util.find_spec("spconv") is not None
needs_spconv = pytest.mark.skipif(not HAS_SPCONV, reason="spconv (CPU wheel, in the `test` extra) is not installed")

SMALL = dict(base_channels=8, channels=(8, 16, 16, 24, 16, 16, 8, 8), layers=(1, 2, 1, 2, 1, 1, 2, 1))


def _scenes(seeds=(0, 1), grid_size=0.2, conditions=("ScanNet", "ScanNet")):
    """Tiny voxelized synthetic rooms, collated: (SceneBatch)."""
    samples = []
    for seed, condition in zip(seeds, conditions):
        room = synthesize_room("scannet", seed, density=0.05)
        sample = SceneSample(torch.from_numpy(room.coord), torch.from_numpy(room.color).float(),
                             torch.from_numpy(room.normal), torch.from_numpy(room.segment),
                             torch.from_numpy(room.instance), f"room{seed}", condition)
        samples.append(Compose([GridSample(grid_size), NormalizeColor()])(sample, torch.Generator().manual_seed(seed)))
    return collate_scenes(samples)


def _randomize_norm_statistics(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics and affines, so that evaluation mode tests them."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith(("running_mean", "bias")):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
            elif name.endswith("running_var") or (name.endswith("weight") and tensor.dim() <= 2 and "modulation" not in name):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator, dtype=torch.float64))


def test_spunet_s_has_pointcept_parameter_count():
    # Pointcept's SpUNet-v1m1 with 6 input channels and 20 classes: 39.2M parameters.
    model = SpUNet(in_channels=6, num_classes=20)
    count = sum(p.numel() for p in model.parameters())
    assert round(count / 1e6, 1) == 39.2


@needs_spconv
def test_spunet_s_state_dict_matches_pointcept_after_conversion():
    theirs = PointceptSpUNet(import_spconv(), 6, 20).state_dict()
    ours = SpUNet(in_channels=6, num_classes=20).state_dict()
    converted = SpUNet.convert_pointcept_state_dict({"backbone." + k: v for k, v in theirs.items()})
    assert set(converted) == set(ours)
    assert all(converted[k].shape == ours[k].shape for k in ours)


def test_shapes_and_feature_mode():
    batch = _scenes()
    x = batch.sparse_tensor()
    logits = SpUNet(in_channels=6, num_classes=13, **SMALL)(x)
    assert logits.shape == (x.features.shape[0], 13)
    features = SpUNet(in_channels=6, num_classes=0, **SMALL)(x)
    assert features.shape == (x.features.shape[0], SMALL["channels"][-1])
    default = SpUNet(num_classes=0)
    assert default.final is None and default.out_channels == 96


def test_rows_follow_the_input_order_and_scenes_do_not_mix():
    torch.manual_seed(0)
    model = SpUNet(in_channels=6, num_classes=5, **SMALL).double().eval()
    batch = _scenes()
    x = batch.sparse_tensor()
    x = SparseTensor(x.features.double(), x.indices, batch_size=x.batch_size)
    out = model(x)
    permutation = torch.randperm(x.features.shape[0])
    shuffled = model(SparseTensor(x.features[permutation], x.indices[permutation].contiguous(), batch_size=2))
    torch.testing.assert_close(shuffled, out[permutation], rtol=1e-10, atol=1e-10)
    first = int(batch.offset[0])
    alone = model(SparseTensor(x.features[:first], x.indices[:first].contiguous(), batch_size=1))
    torch.testing.assert_close(alone, out[:first], rtol=1e-10, atol=1e-10)


def test_pdnorm_conditions_per_scene():
    torch.manual_seed(0)
    model = SpUNet(in_channels=6, num_classes=4, norm="pdnorm", zero_init=False, context_channels=16, **SMALL)
    _randomize_norm_statistics(model.double(), torch.Generator().manual_seed(1))
    model.eval()
    batch = _scenes(conditions=("ScanNet", "Structured3D"))
    x = batch.sparse_tensor()
    x = SparseTensor(x.features.double(), x.indices, batch_size=2)
    context = torch.randn(3, 16, dtype=torch.float64)
    domain = torch.tensor([model.conditions.index(c) for c in batch.conditions]).repeat_interleave(
        torch.diff(batch.offset, prepend=torch.zeros(1, dtype=torch.long)))
    mixed = model(x, domain, context)
    first = int(batch.offset[0])
    for rows, condition in ((slice(0, first), "ScanNet"), (slice(first, None), "Structured3D")):
        indices = x.indices[rows].clone()
        indices[:, 0] = 0
        alone = model(SparseTensor(x.features[rows], indices, batch_size=1), condition, context)
        torch.testing.assert_close(mixed[rows], alone, rtol=1e-10, atol=1e-10)
    # The condition matters (different statistics per condition).
    assert not torch.allclose(model(x, "ScanNet", context), model(x, "S3DIS", context))
    with pytest.raises(ValueError, match="needs domain"):
        model(x)
    with pytest.raises(ValueError, match="share one condition"):
        model(x, torch.arange(x.features.shape[0]) % 3, context)


def test_pdnorm_zero_init_zeroes_every_modulation():
    for zero_init in (True, False):
        model = SpUNet(in_channels=6, num_classes=4, norm="pdnorm", zero_init=zero_init, context_channels=8, **SMALL)
        weights = [m.modulation[1].weight for m in model.modules() if getattr(m, "modulation", None) is not None]
        assert len(weights) > 10 and all(bool((w == 0).all()) == zero_init for w in weights)


def test_bad_input():
    with pytest.raises(ValueError, match="norm must be"):
        SpUNet(norm="ln")
    with pytest.raises(ValueError, match="same even"):
        SpUNet(channels=(32, 64, 64), layers=(1, 1, 1))
    with pytest.raises(TypeError, match="SparseTensor"):
        SpUNet(**SMALL)(torch.zeros(3, 6))
    with pytest.raises(ValueError, match="no sites"):
        SpUNet(**SMALL)(SparseTensor(torch.zeros(0, 6), torch.zeros(0, 4, dtype=torch.int32)))


@needs_spconv
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_pointcept_checkpoint_gives_pointcept_logits(tmp_path, train):
    spconv = import_spconv()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # spconv 2.3.8's CPU path races with more than one thread
    try:
        torch.manual_seed(0)
        theirs = PointceptSpUNet(spconv, 6, 7, **SMALL).double()
        generator = torch.Generator().manual_seed(2)
        with torch.no_grad():  # every convolution weight random, spconv's 1^3 ones included
            for parameter in theirs.parameters():
                if parameter.dim() == 5:  # (out, kx, ky, kz, in): unit-variance outputs
                    fan_in = parameter[0].numel()
                    parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) / fan_in ** 0.5)
        _randomize_norm_statistics(theirs, generator)
        checkpoint = {"epoch": 3, "state_dict": OrderedDict(("module.backbone." + k, v) for k, v in theirs.state_dict().items())}
        path = tmp_path / "model_best.pth"
        torch.save(checkpoint, path)

        ours = SpUNet(in_channels=6, num_classes=7, **SMALL).double()
        report = load_weights(ours, path)  # auto-detected as a Pointcept checkpoint
        assert report.format == "pointcept" and report.missing == () and report.unexpected == ()
        theirs.train(train)
        ours.train(train)
        batch = _scenes()
        feat = batch.feat.double()
        expected = theirs(batch.grid_coord, feat, batch.offset)
        got = ours(SparseTensor(feat, batch.sparse_tensor().indices, batch_size=batch.batch_size))
        assert expected.abs().max() > 1e-3
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    finally:
        torch.set_num_threads(threads)
