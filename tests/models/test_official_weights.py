"""Key layouts of the official Point-MAE / DAPT code, loading official-layout checkpoints, round trips."""

import argparse

import pytest
import torch
from safetensors.torch import load_file, save_file

from ppt.models import DAPT, PointMAE, PointMAEPretraining, load_official_weights

TINY = dict(num_groups=8, group_size=8, depth=2, dim=48, heads=3)
PRETRAIN_TINY = dict(num_groups=8, group_size=8, depth=2, dim=48, heads=3, decoder_depth=1, decoder_heads=3)

# The state-dict keys of the official modules (github.com/Pang-Yatian/Point-MAE models/Point_MAE.py and
# github.com/LMD0311/DAPT models/DAPT.py), written out from their __init__ methods.
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_CONV_STACK = [f"{i}.{p}" for i, ps in ((0, ("weight", "bias")), (1, _BN), (3, ("weight", "bias"))) for p in ps]
_ENCODER = [f"encoder.{conv}.{k}" for conv in ("first_conv", "second_conv") for k in _CONV_STACK]
_POS = [f"{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]
_BLOCK = ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
          "mlp.fc2.weight", "mlp.fc2.bias", "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias"]
_HEAD = [f"cls_head_finetune.{i}.{p}" for i, ps in ((0, ("weight", "bias")), (1, _BN), (4, ("weight", "bias")),
                                                    (5, _BN), (8, ("weight", "bias"))) for p in ps]
_TFTS = [f"tfts_{w}_{i}" for i in (1, 2) for w in ("gamma", "beta")]
_DAPT_BLOCK = _BLOCK + [f"attn.{t}" for t in _TFTS] + [f"mlp.{t}" for t in _TFTS] + _TFTS + \
    ["tfts_gamma_3", "tfts_beta_3"] + [f"Adapter_MLP.{m}.{p}" for m in ("adapter_layer_norm_before", "scale",
                                                                        "down_proj", "up_proj") for p in ("weight", "bias")]


def official_point_mae_keys(depth):
    """``PointTransformer`` (Point-MAE fine-tuning)."""
    return set(["cls_token", "cls_pos", "norm.weight", "norm.bias"] + _ENCODER + [f"pos_embed.{k}" for k in _POS]
               + [f"blocks.blocks.{i}.{k}" for i in range(depth) for k in _BLOCK] + _HEAD)


def official_dapt_keys(depth):
    """``PointTransformer_DAPT``."""
    return set(["cls_token", "cls_pos", "norm.weight", "norm.bias"] + _ENCODER + [f"pos_embed.{k}" for k in _POS]
               + [f"blocks.blocks.{i}.{k}" for i in range(depth) for k in _DAPT_BLOCK] + _HEAD + _TFTS)


def official_pretraining_keys(depth, decoder_depth):
    """``Point_MAE`` (pre-training)."""
    encoder = ([f"MAE_encoder.{k}" for k in _ENCODER] + [f"MAE_encoder.pos_embed.{k}" for k in _POS]
               + [f"MAE_encoder.blocks.blocks.{i}.{k}" for i in range(depth) for k in _BLOCK]
               + ["MAE_encoder.norm.weight", "MAE_encoder.norm.bias"])
    decoder = ([f"MAE_decoder.blocks.{i}.{k}" for i in range(decoder_depth) for k in _BLOCK]
               + ["MAE_decoder.norm.weight", "MAE_decoder.norm.bias"])
    return set(encoder + decoder + ["mask_token", "increase_dim.0.weight", "increase_dim.0.bias"]
               + [f"decoder_pos_embed.{k}" for k in _POS])


def test_state_dict_keys_are_the_official_ones():
    assert set(PointMAE(**TINY).state_dict()) == official_point_mae_keys(2)
    assert set(DAPT(rank=4, **TINY).state_dict()) == official_dapt_keys(2)
    assert set(PointMAEPretraining(**PRETRAIN_TINY).state_dict()) == official_pretraining_keys(2, 1)


def _official_checkpoint(path, state, data_parallel=True):
    """Save ``state`` as the official runners do: under base_model, with DataParallel's prefix, with
    optimizer and metrics entries beside it."""
    torch.save({"base_model": {("module." if data_parallel else "") + k: v for k, v in state.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]},
                "epoch": 299, "metrics": {"acc": 0.0}, "best_metrics": {"acc": 0.0}}, path)
    return path


def _randomised(model):
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif tensor.is_floating_point():
                tensor.normal_()
    return model


def test_point_mae_pretraining_checkpoint_into_classifiers(tmp_path):
    pretrained = _randomised(PointMAEPretraining(**PRETRAIN_TINY))
    path = _official_checkpoint(tmp_path / "pretrain.pth", pretrained.state_dict())
    model = PointMAE(num_classes=5, **TINY)
    report = load_official_weights(model, path, format="point-mae")
    # (BatchNorm fills in a missing num_batches_tracked itself, so it is not reported.)
    head = {k for k in _HEAD if not k.endswith("num_batches_tracked")}
    assert set(report.missing) == {"cls_token", "cls_pos"} | head
    assert report.unexpected == []
    assert set(report.ignored) == {k for k in official_pretraining_keys(2, 1) if not k.startswith("MAE_encoder.")}
    for key, value in pretrained.state_dict().items():
        if key.startswith("MAE_encoder."):
            assert torch.equal(model.state_dict()[key.removeprefix("MAE_encoder.")], value), key

    dapt = DAPT(num_classes=5, rank=4, **TINY)
    report = load_official_weights(dapt, path, format="dapt")
    assert report.unexpected == [] and set(report.missing) == {
        k for k in official_dapt_keys(2) if ("cls" in k or "tfts" in k or "Adapter" in k)
        and not k.endswith("num_batches_tracked")}
    assert torch.equal(dapt.blocks.blocks[1].attn.qkv.weight, pretrained.MAE_encoder.blocks.blocks[1].attn.qkv.weight)

    resumed = PointMAEPretraining(**PRETRAIN_TINY)
    report = load_official_weights(resumed, path)
    assert report.missing == report.unexpected == report.ignored == []
    assert all(torch.equal(resumed.state_dict()[k], v) for k, v in pretrained.state_dict().items())


@pytest.mark.parametrize("model_type", [PointMAE, DAPT])
def test_load_weights_reports_the_ignored_decoder(tmp_path, model_type):
    """load_weights of a pre-training checkpoint (official .pth, or ppt's own safetensors) into a
    classifier leaves the decoder out and says so in report.ignored and in the printed report."""
    from ppt.models import load_weights

    pretrained = _randomised(PointMAEPretraining(**PRETRAIN_TINY))
    decoder = {k for k in official_pretraining_keys(2, 1) if not k.startswith("MAE_encoder.")}
    official = _official_checkpoint(tmp_path / "pretrain.pth", pretrained.state_dict())
    save_file(pretrained.state_dict(), tmp_path / "pretrain.safetensors")
    kwargs = dict(TINY, rank=4) if model_type is DAPT else TINY
    for path in (official, tmp_path / "pretrain.safetensors"):
        report = load_weights(model_type(num_classes=5, **kwargs), path)
        assert report.format == "point-mae" and report.unexpected == ()
        assert set(report.ignored) == decoder
        decoder_blocks = sum(k.startswith("MAE_decoder.") for k in decoder)
        printed = str(report).split("; ignored (not used by this model): ")[1]
        assert set(printed.split(", ")) == {f"MAE_decoder.* ({decoder_blocks} keys)", "decoder_pos_embed.* (4 keys)",
                                            "increase_dim.* (2 keys)", "mask_token"}
    # strict loading fails on missing or unexpected keys, not on ignored ones
    with pytest.raises(ValueError, match="does not match .* exactly"):
        load_weights(model_type(num_classes=5, **kwargs), official, strict=True)
    complete = {**model_type(num_classes=5, **kwargs).state_dict(),
                **{k: v for k, v in pretrained.state_dict().items() if k in decoder}}
    report = load_weights(model_type(num_classes=5, **kwargs), _official_checkpoint(tmp_path / "all.pth", complete),
                          strict=True)
    assert report.missing == report.unexpected == () and set(report.ignored) == decoder


@pytest.mark.parametrize(("model_type", "format"), [(PointMAE, "point-mae"), (DAPT, "dapt")])
def test_fine_tuned_official_checkpoint_round_trip(tmp_path, model_type, format):
    kwargs = dict(TINY, rank=4) if model_type is DAPT else TINY
    trained = _randomised(model_type(num_classes=5, **kwargs)).eval()
    for data_parallel in (True, False):
        path = _official_checkpoint(tmp_path / f"finetuned_{data_parallel}.pth", trained.state_dict(), data_parallel)
        model = model_type(num_classes=5, **kwargs).eval()
        report = load_official_weights(model, path, format=format)
        assert report.missing == report.unexpected == report.ignored == []
        points = torch.randn(2, 64, 3)
        assert torch.equal(model(points), trained(points))


@pytest.mark.parametrize("model_type", [PointMAE, DAPT])
def test_safetensors_round_trip(tmp_path, model_type):
    trained = _randomised(model_type(num_classes=5, **TINY)).eval()
    save_file(trained.state_dict(), tmp_path / "model.safetensors")
    model = model_type(num_classes=5, **TINY).eval()
    model.load_state_dict(load_file(tmp_path / "model.safetensors"))
    points = torch.randn(2, 64, 3)
    assert torch.equal(model(points), trained(points))


def test_bad_checkpoints(tmp_path):
    other_head = _official_checkpoint(tmp_path / "modelnet.pth", PointMAE(num_classes=40, **TINY).state_dict())
    with pytest.raises(ValueError, match=r"cls_head_finetune.8.weight: checkpoint \(40, 256\) vs model \(15, 256\)"):
        load_official_weights(PointMAE(num_classes=15, **TINY), other_head)
    # Anything beyond tensors and plain containers is refused by torch.load(weights_only=True).
    torch.save({"base_model": PointMAE(**TINY).state_dict(), "args": argparse.Namespace(lr=0.1)},
               tmp_path / "with_args.pth")
    with pytest.raises(ValueError, match="Weights only load failed"):
        load_official_weights(PointMAE(**TINY), tmp_path / "with_args.pth")
    with pytest.raises(ValueError, match="entry 'epoch' is a int, not a tensor"):
        load_official_weights(PointMAE(**TINY), {"cls_token": torch.zeros(1, 1, 48), "epoch": 3})
    with pytest.raises(ValueError, match="format must be one of"):
        load_official_weights(PointMAE(**TINY), {}, format="pointbert")


@pytest.mark.parametrize(("model_type", "format"), [(PointMAE, "point-mae"), (DAPT, "dapt")])
def test_load_weights_detects_the_official_formats(tmp_path, model_type, format):
    from ppt.models import load_weights

    kwargs = dict(TINY, rank=4) if model_type is DAPT else TINY
    trained = _randomised(model_type(num_classes=5, **kwargs)).eval()
    path = _official_checkpoint(tmp_path / "official.pth", trained.state_dict(), True)
    model = model_type(num_classes=5, **kwargs).eval()
    report = load_weights(model, path)
    assert report.format == format and report.missing == report.unexpected == ()
    points = torch.randn(2, 64, 3)
    assert torch.equal(model(points), trained(points))
