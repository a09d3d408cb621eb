"""The PointMLP recipes through the real ``ppt`` command on tiny generated data: two training steps of
pointmlp-modelnet40, pointmlp-scanobjectnn, pointmlp-partseg (with ``ppt eval`` and ``ppt predict``)
and unipre3d-object-pointmlp, then ``ppt export-backbone`` into the PointMLP classifier (through
``ppt train``) and into the part-segmentation model."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ppt.data import SHAPENETPART_PARTS
from ppt.engine import load_recipe
from ppt.engine.builders import build_model
from ppt.models import PointMLP, PointMLPPartSeg, load_weights
from tests.engine.conftest import set_options

# a small PointMLP for 64-point clouds: anchors 32, 16, 8, 4
TINY_POINTMLP = ["model.pointmlp.points=64", "model.pointmlp.embed_dim=8", "model.pointmlp.k_neighbors=[8,8,8,4]",
                 "model.pointmlp.pre_blocks=[1,1,1,1]", "model.pointmlp.pos_blocks=[1,1,1,1]"]
TINY_PARTS = ["data.synthetic.train_per_class=1", "data.synthetic.test_per_class=1", "data.synthetic.object_points=64",
              "data.num_points=64", "data.batch_size=4", "data.val_batch_size=16", "train.tensorboard=false",
              "train.eval_every=0", "train.checkpoint_every=0", "train.amp=none"]
TINY_PARTSEG = [*TINY_PARTS, *TINY_POINTMLP, "model.pointmlp.reducers=[2,2,2,2]", "model.pointmlp.de_dims=[16,16,16,16]",
                "model.pointmlp.de_blocks=[1,1,1,1]"]
TINY_RENDERS = [
    "data.synthetic.renders_per_class=1", "data.synthetic.render_views=4", "data.synthetic.render_gaussians=512",
    "data.synthetic.object_points=128", "data.num_points=64", "data.batch_size=2", "data.val_batch_size=4",
    "unipre3d.image_size=16", "unipre3d.views=2", "unipre3d.preview_objects=1", "train.tensorboard=false",
    "train.eval_every=0", "train.checkpoint_every=0", "train.amp=none", "train.preview_every=0",
]


def _train_two_steps_and_evaluate(ppt_command, recipe, out, overrides, model_name) -> str:
    """``ppt train RECIPE`` for two steps (both with a positive loss), then ``ppt eval`` on the last
    checkpoint; returns what eval printed."""
    run = ppt_command("train", recipe, "--out", out, "--no-progress", *set_options([*overrides, "train.steps=2"]))
    assert run.returncode == 0, run.stderr
    assert "done: step 2 of 2" in run.stdout and f"{model_name} with" in run.stdout
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    evaluation = ppt_command("eval", out / "last.safetensors", "--no-progress")
    assert evaluation.returncode == 0, evaluation.stderr
    return evaluation.stdout


def test_recipes_build_the_official_models():
    modelnet = load_recipe("pointmlp-modelnet40")
    model = build_model(modelnet.model, num_classes=40, in_channels=3)
    assert isinstance(model, PointMLP) and sum(p.numel() for p in model.parameters()) == 13_238_504
    assert (modelnet.optim.name, modelnet.optim.lr, modelnet.optim.weight_decay, modelnet.train.label_smoothing) == (
        "sgd", 0.1, 2e-4, 0.2)
    elite = load_recipe("pointmlp-scanobjectnn", ["model.pointmlp.variant=elite"])
    assert sum(p.numel() for p in build_model(elite.model, num_classes=40, in_channels=3).parameters()) == 716_232
    with pytest.raises(ValueError, match="model.pointmlp.variant must be one of"):
        build_model(load_recipe("pointmlp-modelnet40", ["model.pointmlp.variant=tiny"]).model, num_classes=4,
                    in_channels=3)


@pytest.mark.slow  # two ppt processes each: about a minute on the loaded development machine
@pytest.mark.parametrize("recipe", ["pointmlp-modelnet40", "pointmlp-scanobjectnn"])
def test_classification_recipes_train_two_steps(tmp_path, object_overrides, ppt_command, recipe):
    evaluation = _train_two_steps_and_evaluate(ppt_command, recipe, tmp_path / "run",
                                               [*object_overrides, *TINY_POINTMLP], "pointmlp")
    assert "overall accuracy" in evaluation and "(15 objects)" in evaluation


def test_bad_pointmlp_setting_is_one_line_rc_2(tmp_path, object_overrides, ppt_command):
    run = ppt_command("train", "pointmlp-modelnet40", "--out", tmp_path / "run", "--no-progress",
                      *set_options([*object_overrides, "model.pointmlp.points=64", "train.steps=1"]))
    assert run.returncode == 2
    assert "k_neighbors=24" in run.stderr and len(run.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # three ppt processes
def test_unipre3d_on_pointmlp_pretrains_and_exports_into_the_classifier_and_part_seg(
        tmp_path, cache_dir, object_overrides, ppt_command):
    pre = tmp_path / "pre"
    run = ppt_command("train", "unipre3d-object-pointmlp", "--out", pre, "--no-progress",
                      *set_options([f"data.cache_dir={cache_dir}", *TINY_RENDERS, *TINY_POINTMLP, "train.steps=2"]))
    assert run.returncode == 0, run.stderr
    assert "done: step 2 of 2" in run.stdout
    backbone = tmp_path / "pointmlp-backbone.safetensors"
    export = ppt_command("export-backbone", pre / "last.safetensors", "--out", backbone)
    assert export.returncode == 0, export.stderr
    with safe_open(str(backbone), "pt") as handle:
        info = json.loads(handle.metadata()["ppt-backbone"])
    assert info["backbone"]["name"] == "pointmlp" and info["backbone"]["points"] == 64
    weights = load_file(str(backbone))
    assert any(key.startswith("decode_list.") for key in weights) and "local_grouper_list.0.affine_alpha" in weights

    # into the classifier through ppt train: the encoder loads, the decoder is ignored, the head is fresh
    fine = tmp_path / "fine"
    run = ppt_command("train", "pointmlp-modelnet40", "--out", fine, "--no-progress",
                      *set_options([*object_overrides, *TINY_POINTMLP, "train.steps=1", f"model.weights={backbone}",
                                    "model.weights_format=pointmlp"]))
    assert run.returncode == 0, run.stderr
    assert "loaded pointmlp weights; missing: classifier.0.weight" in run.stdout
    assert "unexpected: none" in run.stdout and "ignored (not used by this model): decode_list.*" in run.stdout

    # into pointmlp-partseg set to the pre-training's network, through ppt train
    part = [f"data.cache_dir={cache_dir}", *TINY_PARTS, *TINY_POINTMLP, "model.pointmlp.normals=false",
            "model.pointmlp.bias=false", "model.pointmlp.use_xyz=false", "model.pointmlp.reducers=[2,2,2,2]",
            "model.pointmlp.de_blocks=[2,2,2,2]", "train.steps=1", f"model.weights={backbone}",
            "model.weights_format=pointmlp"]
    run = ppt_command("train", "pointmlp-partseg", "--out", tmp_path / "part", "--no-progress", *set_options(part))
    assert run.returncode == 0, run.stderr
    assert "loaded pointmlp weights; missing: cls_map.0.net.0.weight" in run.stdout
    assert "unexpected: none" in run.stdout and "ignored (not used by this model): none" in run.stdout

    # the same in Python: encoder and decoder load, the head is fresh
    settings = dict(points=64, embed_dim=8, k_neighbors=(8, 8, 8, 4), pre_blocks=(1, 1, 1, 1), pos_blocks=(1, 1, 1, 1),
                    bias=False, use_xyz=False, reducers=(2, 2, 2, 2), de_blocks=(2, 2, 2, 2), normals=False)
    segmenter = PointMLPPartSeg(50, **settings)
    report = load_weights(segmenter, backbone, format="pointmlp")
    assert report.unexpected == () and report.ignored == ()
    assert {key.split(".")[0] for key in report.missing} == {"cls_map", "gmp_map_list", "gmp_map_end", "classifier"}
    key = "decode_list.3.fuse.net.0.weight"
    assert torch.equal(segmenter.state_dict()[key], weights[key])


def test_partseg_recipe_builds_the_official_model_and_refuses_foreign_settings():
    config = load_recipe("pointmlp-partseg")
    model = build_model(config.model, num_classes=50, in_channels=3)
    assert isinstance(model, PointMLPPartSeg) and sum(p.numel() for p in model.parameters()) == 16_755_594
    assert (config.optim.lr, config.optim.weight_decay, config.data.augment) == (0.003, 0.0, False)
    with pytest.raises(ValueError, match="model.pointmlp.de_dims is not a setting of pointmlp"):
        build_model(load_recipe("pointmlp-modelnet40", ["model.pointmlp.de_dims=[8,8,8,8]"]).model, num_classes=4,
                    in_channels=3)
    with pytest.raises(ValueError, match="variant 'pointmlp'"):
        build_model(load_recipe("pointmlp-partseg", ["model.pointmlp.variant=elite"]).model, num_classes=50,
                    in_channels=3)


@pytest.mark.slow  # three ppt processes
def test_partseg_recipe_trains_two_steps_evaluates_and_predicts(tmp_path, cache_dir, ppt_command):
    out = tmp_path / "run"
    evaluation = _train_two_steps_and_evaluate(ppt_command, "pointmlp-partseg", out,
                                               [f"data.cache_dir={cache_dir}", *TINY_PARTSEG], "pointmlp-partseg")
    assert "instance mIoU" in evaluation
    chair = sorted((cache_dir / "synthetic" / "shapenetpart-seed0-1x1-64pts" / "03001627").glob("*.txt"))[0]
    predict = ppt_command("predict", out / "last.safetensors", chair, "--category", "chair", "--out", tmp_path / "pred")
    assert predict.returncode == 0, predict.stderr
    labels = np.load(tmp_path / "pred" / f"{chair.stem}.labels.npy")
    assert labels.shape == (len(np.loadtxt(chair)),) and set(labels.tolist()) <= set(SHAPENETPART_PARTS["Chair"])
    assert (tmp_path / "pred" / f"{chair.stem}.ply").is_file() and (tmp_path / "pred" / f"{chair.stem}.png").is_file()
