"""PointTransformerV3: parameter count, logits and gradients equal to Pointcept's PT-v3m1 file built on
spconv 2.3.8 (the oracle, loaded from a checkpoint in Pointcept's layout), patches of scenes smaller
than one patch, order shuffling, PDNorm conditions and checkpoint round trips."""

import importlib.util

import pytest
import torch
from torch import Tensor, nn

from ppt.bench.ptv3_reference import point_dict, pointcept_ptv3
from ppt.bench.spconv_reference import import_spconv
from ppt.models import PointTransformerV3, load_weights
from ppt.sparse import SparseTensor

pytestmark = pytest.mark.usefixtures("single_thread")

needs_spconv = pytest.mark.skipif(importlib.util.find_spec("spconv") is None,
                                  reason="spconv (CPU wheel, in the `test` extra) is not installed")

# Three stages, patches of 16 points: scenes of a few dozen points need padding at every level.
TINY = dict(in_channels=4, order=("z", "z-trans", "hilbert", "hilbert-trans"), stride=(2, 2),
            enc_depths=(1, 2, 1), enc_channels=(8, 16, 16), enc_num_head=(1, 2, 2), enc_patch_size=(16, 16, 16),
            dec_depths=(2, 1), dec_channels=(8, 16), dec_num_head=(2, 2), dec_patch_size=(16, 16), drop_path=0.0)


def _scenes(sizes=(70, 45), extent=12, channels=4, dtype=torch.float64, seed=0):
    """A batch of scenes of distinct random grid points: (SparseTensor, their indices)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for b, n in enumerate(sizes):
        cells = torch.randperm(extent**3, generator=generator)[:n]
        grid = torch.stack([cells // extent**2, cells // extent % extent, cells % extent], 1)
        rows.append(torch.cat([torch.full((n, 1), b), grid], 1))
    indices = torch.cat(rows).int()
    features = torch.randn(len(indices), channels, generator=generator, dtype=dtype)
    return SparseTensor(features, indices, [extent] * 3, len(sizes))


def _randomize_norms(model: nn.Module, seed: int = 1) -> None:
    """Non-trivial running statistics and affines, so that eval mode tests them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_mean") or (name.endswith("bias") and "norm" in name):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
            elif name.endswith("running_var") or (name.endswith("weight") and tensor.dim() == 1):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator, dtype=torch.float64))


def test_default_model_has_pointcept_parameter_count():
    # Pointcept's ScanNet PTv3 (semseg-pt-v3m1-0-base): backbone 46,166,272 + seg_head 1,300.
    model = PointTransformerV3()
    assert sum(p.numel() for p in model.parameters()) == 46_167_572
    assert sum(p.numel() for p in model.seg_head.parameters()) == 1_300
    keys = model.state_dict()
    assert keys["embedding.stem.conv.weight"].shape == (32, 5, 5, 5, 6)
    for key in ("enc.enc1.down.proj.weight", "enc.enc1.down.norm.0.running_var", "enc.enc0.block0.cpe.0.bias",
                "enc.enc0.block0.cpe.1.weight", "enc.enc0.block0.cpe.2.weight", "enc.enc0.block0.norm1.0.weight",
                "enc.enc0.block0.attn.qkv.weight", "enc.enc0.block0.attn.proj.bias", "enc.enc0.block0.norm2.0.bias",
                "enc.enc0.block0.mlp.0.fc1.weight", "enc.enc0.block0.mlp.0.fc2.weight", "dec.dec0.up.proj.0.weight",
                "dec.dec0.up.proj.1.running_mean", "dec.dec0.up.proj_skip.0.weight", "dec.dec0.up.proj_skip.1.weight"):
        assert key in keys, key


@needs_spconv
def test_pointcept_reference_has_the_same_parameter_count():
    from ppt.bench.ptv3_reference import default_backbone

    theirs = pointcept_ptv3(import_spconv(), num_classes=20, **default_backbone())
    assert sum(p.numel() for p in theirs.parameters()) == 46_167_572


@needs_spconv
@pytest.mark.parametrize("pdnorm", [False, True])
def test_logits_and_gradients_equal_pointcept(pdnorm, tmp_path):
    # Pointcept's non-flash path (patch size = min(patch_size, smallest scene), padding by repetition)
    # with the same weights, from a checkpoint in Pointcept's layout: float64, relative 1e-8.
    spconv = import_spconv()
    kwargs = dict(TINY, shuffle_orders=False)
    if pdnorm:
        kwargs.update(pdnorm_bn=True, pdnorm_ln=True)
    torch.manual_seed(0)
    theirs = pointcept_ptv3(spconv, num_classes=5, **kwargs).double()
    _randomize_norms(theirs)
    checkpoint = {"state_dict": {"module." + k: v for k, v in theirs.state_dict().items()}, "epoch": 3}
    torch.save(checkpoint, tmp_path / "model_best.pth")
    ours = PointTransformerV3(num_classes=5, enable_flash=False, **kwargs).double()
    report = load_weights(ours, tmp_path / "model_best.pth", format="pointcept", strict=True)
    assert report.format == "pointcept" and not report.missing and not report.unexpected

    x = _scenes()
    condition = "S3DIS" if pdnorm else None
    for training in (False, True):
        theirs.train(training)
        ours.train(training)
        features = x.features.clone().requires_grad_()
        want = theirs(point_dict(features, x.indices, condition))
        got = ours(x.replace_feature(features), condition)
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
        if training:
            grad = torch.randn_like(want)
            # (the norms of the other PDNorm conditions take no part: no gradient on either side)
            want_grads = torch.autograd.grad(want, [features, *theirs.parameters()], grad, allow_unused=True)
            got_grads = dict(zip(["input", *dict(ours.named_parameters())],
                                 torch.autograd.grad(got, [features, *ours.parameters()], grad, allow_unused=True)))
            for (name, _), want_grad in zip([("input", None), *theirs.named_parameters()], want_grads):
                got_grad = got_grads[name.removeprefix("backbone.")]
                assert (got_grad is None) == (want_grad is None), name
                if want_grad is not None:
                    torch.testing.assert_close(got_grad, want_grad, rtol=1e-7, atol=1e-10,
                                               msg=lambda m, name=name: f"{name}: {m}")


def test_scenes_smaller_than_one_patch_attend_within_themselves():
    # enable_flash=True semantics: a scene of n <= patch_size points is one patch of n points. So a
    # batch of such scenes gives, in eval, exactly what each scene gives alone.
    torch.manual_seed(0)
    model = PointTransformerV3(num_classes=3, shuffle_orders=False, **dict(TINY, enc_patch_size=(64,) * 3,
                                                                          dec_patch_size=(64,) * 2)).double().eval()
    _randomize_norms(model)
    x = _scenes(sizes=(50, 9, 1))
    with torch.no_grad():
        together = model(x)
        start = 0
        for b in range(3):
            rows = (x.indices[:, 0] == b).nonzero().squeeze(1)
            indices = x.indices[rows].clone()
            indices[:, 0] = 0
            alone = model(SparseTensor(x.features[rows], indices, x.spatial_shape, 1))
            torch.testing.assert_close(together[rows], alone, rtol=1e-10, atol=1e-12)
            start += len(rows)
    # With enable_flash=False the patch shrinks to the smallest scene (1 point): no attention at all,
    # every point its own patch.
    flat = PointTransformerV3(num_classes=3, shuffle_orders=False, enable_flash=False,
                              **dict(TINY, enc_patch_size=(64,) * 3, dec_patch_size=(64,) * 2)).double().eval()
    flat.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(flat(x), together)


def test_flash_layout_equals_pointcepts_when_every_scene_fills_a_patch():
    # With every scene at least patch_size long, enable_flash=True pads exactly as the non-flash path
    # (patch size min(patch_size, smallest scene) = patch_size), which equals Pointcept's above.
    torch.manual_seed(0)
    flash = PointTransformerV3(num_classes=3, shuffle_orders=False, **TINY).double().eval()
    _randomize_norms(flash)
    plain = PointTransformerV3(num_classes=3, shuffle_orders=False, enable_flash=False, **TINY).double().eval()
    plain.load_state_dict(flash.state_dict())
    x = _scenes(sizes=(70, 45))
    with torch.no_grad():
        torch.testing.assert_close(flash(x), plain(x), rtol=1e-12, atol=1e-12)


def test_padding_repeats_the_points_one_patch_before():
    from ppt.models.point_transformer_v3 import _patches

    layout = _patches([5, 3, 8], 4, torch.device("cpu"))
    # scene 0 (5 points -> 8): ranks 0..4 then 1..3 again (position j >= n takes j - 4); scene 2 (8 points)
    # is two full patches; scene 1 (3 < 4 points) is one shorter patch after them.
    assert layout.gather.tolist() == [0, 1, 2, 3, 4, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 5, 6, 7]
    assert layout.scatter.tolist() == [0, 1, 2, 3, 4, 16, 17, 18, 8, 9, 10, 11, 12, 13, 14, 15]
    assert (layout.size, layout.full, layout.short) == (4, 16, [3])


def test_orders_shuffle_in_training_only():
    torch.manual_seed(0)
    model = PointTransformerV3(num_classes=3, **TINY).double()
    _randomize_norms(model)
    x = _scenes()
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)  # eval: no shuffling anywhere (Pointcept's pooling would shuffle)
    model.train()
    with torch.no_grad():
        runs = [model(x) for _ in range(6)]
    assert any(not torch.allclose(runs[0], run) for run in runs[1:])
    fixed = PointTransformerV3(num_classes=3, shuffle_orders=False, **TINY).double().train()
    fixed.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(fixed(x), fixed(x))


def test_pdnorm_conditions_and_adaptive_context():
    torch.manual_seed(0)
    kwargs = dict(TINY, shuffle_orders=False, pdnorm_bn=True, pdnorm_ln=True, pdnorm_adaptive=True,
                  pdnorm_conditions=("ScanNet", "S3DIS"), context_channels=6)
    model = PointTransformerV3(num_classes=3, **kwargs).double().eval()
    _randomize_norms(model)
    keys = model.state_dict()
    assert "embedding.stem.norm.norm.1.running_mean" in keys and "enc.enc0.block0.norm1.0.norm.1.weight" in keys
    assert "enc.enc0.block0.norm1.0.modulation.1.weight" in keys
    x = _scenes()
    context = torch.randn(2, 6, dtype=torch.float64)
    with torch.no_grad():
        by_name = model(x, "S3DIS", context)
        assert torch.equal(by_name, model(x, 1, context))
        torch.testing.assert_close(model(x, 1, context[1:]), by_name, rtol=1e-12, atol=1e-12)  # one row, one condition
        assert not torch.allclose(by_name, model(x, "ScanNet", context))
        # a mixed batch: each scene normalized as its own condition
        per_point = (x.indices[:, 0] == 1).long()  # scene 0 ScanNet, scene 1 S3DIS
        mixed = model(x, per_point, context)
        for b, name in enumerate(("ScanNet", "S3DIS")):
            rows = x.indices[:, 0] == b
            torch.testing.assert_close(mixed[rows], model(x, name, context)[rows], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="needs a condition"):
        model(x)
    with pytest.raises(ValueError, match="unknown condition 'Structured3D'"):
        model(x, "Structured3D", context)
    with pytest.raises(ValueError, match=r"context must have shape \(2, C\)"):
        model(x, 0, None)


def test_training_step_reaches_every_parameter_and_rpe():
    torch.manual_seed(0)
    model = PointTransformerV3(num_classes=3, enable_flash=False, enable_rpe=True, **dict(TINY, drop_path=0.2))
    x = _scenes(dtype=torch.float32)
    logits = model(x)
    assert logits.shape == (x.features.shape[0], 3)
    logits.square().mean().backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, silent


def test_checkpoint_round_trip(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = PointTransformerV3(num_classes=3, shuffle_orders=False, **TINY).double().eval()
    _randomize_norms(model)
    save_file(model.state_dict(), str(tmp_path / "ptv3.safetensors"))
    loaded = PointTransformerV3(num_classes=3, shuffle_orders=False, **TINY).double().eval()
    report = load_weights(loaded, tmp_path / "ptv3.safetensors", strict=True)
    assert report.format == "ppt"
    x = _scenes()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_backbone_without_head_and_encoder_mode():
    x = _scenes(dtype=torch.float32)
    features = PointTransformerV3(num_classes=0, **TINY)(x)
    assert features.shape == (x.features.shape[0], 8)
    encoder = PointTransformerV3(num_classes=0, enc_mode=True, **TINY)
    coarse = encoder(x)
    assert isinstance(coarse, SparseTensor) and coarse.features.shape[1] == 16
    assert coarse.features.shape[0] < x.features.shape[0]
    assert torch.equal(coarse.indices[:, 1:].long().amax(0) <= 2, torch.ones(3, dtype=torch.bool))


def _free_sites(x: SparseTensor, scene: int, count: int, extent: int = 12) -> Tensor:
    """``count`` sites ``[scene, gx, gy, gz]`` of the grid that ``x`` does not occupy."""
    taken = {tuple(site) for site in x.indices.tolist()}
    free = [(scene, i, j, k) for i in range(extent) for j in range(extent) for k in range(extent)
            if (scene, i, j, k) not in taken]
    return torch.tensor(free[:count], dtype=torch.int32)


def test_after_stem_hook_continues_from_the_sites_it_returns():
    x = _scenes(dtype=torch.float32)
    rows = x.features.shape[0]
    model = PointTransformerV3(num_classes=3, **dict(TINY, drop_path=0.0), shuffle_orders=False).eval()
    seen = []

    def record(y):
        seen.append((y.features.shape, y.indices.clone()))
        return y

    plain = model(x)
    assert torch.allclose(model(x, after_stem=record), plain)  # an identity hook changes nothing
    assert seen[0][0] == (rows, 8) and torch.equal(seen[0][1], x.indices)  # it sees the embedding's output

    added = torch.cat([_free_sites(x, 0, 5), _free_sites(x, 1, 3)])

    def add_sites(y):
        features = torch.randn(len(added), y.features.shape[1], generator=torch.Generator().manual_seed(4))
        return SparseTensor(torch.cat([y.features, features]), torch.cat([y.indices, added]), y.spatial_shape,
                            y.batch_size)

    encoded = []
    hook = model.enc.enc0.block0.register_forward_pre_hook(lambda module, args: encoded.append(args[0]))
    logits = model(x, after_stem=add_sites)
    hook.remove()
    assert logits.shape == (rows + len(added), 3) and torch.isfinite(logits).all()
    level = encoded[0]  # the encoder serialized the sites the hook returned, the cloud's rows first
    assert torch.equal(level.sparse.indices, torch.cat([x.indices, added]))
    assert level.serialization.code.shape == (len(TINY["order"]), rows + len(added)) and level.counts == [75, 48]

    with pytest.raises(TypeError, match="after_stem must return a ppt.sparse.SparseTensor, got Tensor"):
        model(x, after_stem=lambda y: y.features)
    with pytest.raises(ValueError, match="after_stem must return 8 features per row, batch size 2 and at least the "
                                         rf"stem's {rows} rows, got 4, 2 and {rows}"):
        model(x, after_stem=lambda y: y.replace_feature(y.features[:, :4]))
    conditioned = PointTransformerV3(num_classes=3, pdnorm_bn=True, **TINY)
    with pytest.raises(ValueError, match="a per-point condition cannot follow the rows after_stem adds"):
        conditioned(x, torch.zeros(rows, dtype=torch.int64), after_stem=add_sites)
    assert conditioned(x, "ScanNet", after_stem=add_sites).shape == (rows + len(added), 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(order=("z", "peano")), "order must name orders among"),
    (dict(stride=(2,)), r"stride must have 2 entries for 3 stages"),
    (dict(dec_channels=(8,)), r"dec_channels must have 2 entries"),
    (dict(stride=(2, 3)), "stride must be a power of two"),
    (dict(enable_rpe=True), "enable_flash=True needs enable_rpe"),
    (dict(enc_num_head=(3, 2, 2)), "8 channels do not split into 3 heads"),
])
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PointTransformerV3(num_classes=3, **dict(TINY, **kwargs))


def test_bad_input():
    model = PointTransformerV3(num_classes=3, **TINY)
    x = _scenes(dtype=torch.float32)
    with pytest.raises(TypeError, match="expects a 3-D ppt.sparse.SparseTensor"):
        model(x.features)
    with pytest.raises(ValueError, match="the input has no points"):
        model(SparseTensor(x.features[:0], x.indices[:0], [4, 4, 4], 1))
    bad = x.indices.clone()
    bad[0, 1] = -1
    # the stem's kernel map reads the sites first; sites an after_stem hook returns, the serialization
    with pytest.raises(RuntimeError, match=r"indices\[:, 1\] must be in \[0, spatial_shape\[0\]=12\), got range \[-1, "):
        model(SparseTensor(x.features, bad, [12] * 3, 2))
    with pytest.raises(RuntimeError, match=r"grid_coord must be in \[0, "):
        model(x, after_stem=lambda y: SparseTensor(y.features, bad, y.spatial_shape, y.batch_size))


@needs_spconv
def test_ppt_on_ptv3_loads_pointcept_rows_by_condition_name():
    # Pointcept's PPT-v1m1 + PT-v3m1: the backbone's PDNorm rows follow its pdnorm_conditions
    # (ScanNet, S3DIS, Structured3D), the PPT level its own order; ppt matches them by name.
    from ppt.models import PointPromptTraining

    spconv = import_spconv()
    torch.manual_seed(0)
    kwargs = dict(TINY, shuffle_orders=False, pdnorm_bn=True, pdnorm_ln=True)
    theirs = pointcept_ptv3(spconv, num_classes=5, **kwargs).double().eval()
    _randomize_norms(theirs)
    conditions = ("Structured3D", "ScanNet", "S3DIS")
    ours = PointPromptTraining(conditions=conditions, in_channels=4, backbone="ptv3", backbone_mode=True,
                               context_channels=8,
                               backbone_kwargs={k: v for k, v in kwargs.items() if not k.startswith("pdnorm")}).double()
    state = {k: v for k, v in theirs.state_dict().items() if k.startswith("backbone.")}
    state["embedding_table.weight"] = torch.randn(3, 8, dtype=torch.float64)
    report = load_weights(ours, {"state_dict": state}, format="pointcept", strict=True)
    assert not report.missing and not report.unexpected
    ours.eval()
    x = _scenes()
    with torch.no_grad():
        for name in conditions:
            want = theirs.backbone(point_dict(x.features, x.indices, name)).feat
            torch.testing.assert_close(ours(x, name), want, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="adapter='add' attaches to SpUNet blocks"):
        PointPromptTraining(conditions=conditions, backbone="ptv3", adapter="add", backbone_mode=True)
    with pytest.raises(ValueError, match="backbone must be one of"):
        PointPromptTraining(conditions=conditions, backbone="pointnet", backbone_mode=True)
