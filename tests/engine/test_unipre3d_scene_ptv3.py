"""UniPre3D scene level on Point Transformer V3 through the engine: the recipe's official settings,
pre-training -> ``ppt export-backbone`` -> fine-tuning with ``ptv3-scannet`` through the real ``ppt``
command from a fresh cache, the backbone loading into ptv3-s3dis and ptv3-scannet200, and an exact resume."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ppt.engine import create_task, load_recipe
from ppt.models import PointTransformerV3, UniPre3DScene, load_weights
from tests.engine.conftest import set_options
from tests.engine.test_ptv3_recipes import TINY_PTV3
from tests.engine.test_unipre3d_scene_train import (SPUNET, TINY_FRAMES, assert_resume_continues_exactly,
                                                    train_one_thread)

FRAMES = [setting for setting in TINY_FRAMES if setting not in SPUNET]
PRETRAIN = [*FRAMES, *TINY_PTV3]


def test_recipe_has_the_official_settings():
    config = load_recipe("unipre3d-scene-ptv3")
    assert (config.optim.name, config.optim.lr, config.optim.eps, config.train.grad_clip) == ("adamw", 1e-4, 1e-15, 1.0)
    assert (config.schedule.name, config.schedule.gamma, config.optim.param_groups) == ("step", 0.9, [])
    assert (config.unipre3d.views, config.unipre3d.frame_size, config.unipre3d.head_hidden) == (8, [160, 120], 32)
    model = create_task(config).build_model()
    assert isinstance(model, UniPre3DScene) and isinstance(model.backbone, PointTransformerV3)
    backbone = model.backbone
    # UniPre3D's PointTransformerV3(in_channels=6): Pointcept's widths and depths, orders z / z-trans, patches of 48
    assert sum(p.numel() for p in backbone.parameters()) == 46_166_272
    assert backbone.order == ("z", "z-trans") and backbone.enc.enc0.block0.attn.patch_size == 48
    assert backbone.dec.dec0.block0.attn.patch_size == 48 and backbone.shuffle_orders
    # the fusion at the embedding's 32 channels, the Gaussian head 64 -> 32 -> 23 on the decoder's output
    assert model.fusion.channels == 32
    assert [layer.out_features for layer in model.head.mlp if isinstance(layer, torch.nn.Linear)] == [32, 23]
    assert model.head.mlp[0].in_features == 64 and (model.renderer.width, model.renderer.height) == (160, 120)
    # at their defaults the fine-tuning recipes take the whole backbone (orders and patch sizes carry no weights)
    state = {key.removeprefix("backbone."): value for key, value in model.state_dict().items()
             if key.startswith("backbone.")}
    for recipe in ("ptv3-scannet", "ptv3-s3dis", "ptv3-scannet200"):
        report = load_weights(create_task(load_recipe(recipe)).build_model(), state)
        assert set(report.missing) == {"seg_head.weight", "seg_head.bias"} and report.unexpected == ()


def _losses(out):
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [record["loss"] for record in records if "loss" in record]


@pytest.mark.slow  # three ppt processes (pre-train, export, fine-tune) from a fresh cache: 13 to 29 s on 2 loaded cores
def test_pretrain_export_and_finetune_through_the_ppt_command(tmp_path, ppt_command):
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    pre = tmp_path / "pre"
    run = ppt_command("train", "unipre3d-scene-ptv3", "--out", pre, "--no-progress",
                      *set_options([cache, *PRETRAIN, "train.steps=2"]))
    assert run.returncode == 0, run.stderr
    assert "done: step 2 of 2" in run.stdout
    losses = _losses(pre)
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert (pre / "previews" / "step_0000002.png").is_file()

    backbone = tmp_path / "ptv3-backbone.safetensors"
    export = ppt_command("export-backbone", pre / "last.safetensors", "--out", backbone)
    assert export.returncode == 0, export.stderr
    assert "of the unipre3d-scene-ptv3 backbone at step 2 (weight average)" in export.stdout
    with safe_open(str(backbone), "pt") as handle:
        info = json.loads(handle.metadata()["ppt-backbone"])
    assert info["backbone"]["name"] == "ptv3" and info["backbone"]["order"] == ["z", "z-trans"]
    assert info["backbone"]["enc_channels"] == [8, 16, 16] and info["backbone"]["in_channels"] == 6
    weights, checkpoint = load_file(backbone), load_file(pre / "last.safetensors")
    assert weights and all(torch.equal(value, checkpoint[f"backbone.{key}"]) for key, value in weights.items())
    assert "embedding.stem.conv.weight" in weights and not any(key.startswith(("fusion.", "head.", "adapter."))
                                                               for key in weights)

    # ptv3-scannet (Pointcept's four orders, its own patch sizes) fine-tunes from it: only seg_head is missing
    scene = [cache, "data.synthetic.scenes=6", "data.synthetic.density=0.05", "data.grid_size=0.1",
             "data.point_max=3000", "train.tensorboard=false", "train.eval_every=0", "train.checkpoint_every=0",
             "train.amp=none", *TINY_PTV3]
    fine = tmp_path / "fine"
    run = ppt_command("train", "ptv3-scannet", "--out", fine, "--no-progress",
                      *set_options([*scene, "train.steps=2", f"model.weights={backbone}"]))
    assert run.returncode == 0, run.stderr
    assert "loaded ppt weights; missing: seg_head.weight, seg_head.bias; unexpected: none" in run.stdout
    assert "done: step 2 of 2" in run.stdout and len(_losses(fine)) == 2

    # so do ptv3-s3dis (13 classes) and ptv3-scannet200 (200 classes)
    for recipe, classes in (("ptv3-s3dis", 13), ("ptv3-scannet200", 200)):
        task = create_task(load_recipe(recipe, [*scene, f"model.weights={backbone}"]))
        model = task.build_model()
        assert model.seg_head.out_features == classes
        state = model.state_dict()
        assert all(torch.equal(state[key], value) for key, value in weights.items())
        report = load_weights(model, backbone)
        assert set(report.missing) == {"seg_head.weight", "seg_head.bias"} and report.unexpected == ()


def test_resume_continues_exactly(tmp_path):
    # order shuffling and drop path (0.3) draw from the restored random state
    config = load_recipe("unipre3d-scene-ptv3", [f"data.cache_dir={tmp_path / 'cache'}", *PRETRAIN, "train.steps=2"])
    whole = train_one_thread(config, tmp_path / "whole", "unipre3d-scene-ptv3")
    assert_resume_continues_exactly(config, "unipre3d-scene-ptv3", tmp_path / "whole", whole.losses, tmp_path / "split")
