import contextlib
import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ppt.cli import main
from ppt.engine import create_task, load_recipe, read_meta, read_train_state, train
from ppt.engine.config import ConfigError
from ppt.data import normalize_unit_sphere
from ppt.data.renders.shapenet_renders import from_camera_frame
from ppt.engine.tasks.unipre3d import export_backbone, psnr
from ppt.models import PointMAE, load_weights

BACKBONE = ["model.depth=1", "model.dim=24", "model.heads=2", "model.num_groups=8", "model.group_size=8"]
TINY_RENDERS = [
    "data.synthetic.renders_per_class=1", "data.synthetic.render_views=4", "data.synthetic.render_gaussians=512",
    "data.synthetic.object_points=128", "data.num_points=64", "data.batch_size=2", "data.val_batch_size=4",
    "unipre3d.image_size=16", "unipre3d.views=2", "unipre3d.head_hidden=16", "unipre3d.preview_objects=2",
    *BACKBONE, "train.tensorboard=false", "train.eval_every=0", "train.checkpoint_every=0", "train.amp=none",
    "train.ema_decay=0.5", "train.ema_start=1", "train.preview_every=1",
    "optim.lr=0.01",  # steps large enough that the average and the raw weights render differently
]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("unipre3d") / "run"
    config = load_recipe("unipre3d-object", [f"data.cache_dir={cache_dir}", *TINY_RENDERS, "train.steps=2"])
    result = train(config, out, recipe="unipre3d-object", progress=False)
    return config, out, result


def test_recipe_has_the_official_optimizer():
    config = load_recipe("unipre3d-object")
    assert (config.optim.name, config.optim.lr, config.optim.eps, config.train.grad_clip) == ("adamw", 1e-4, 1e-15, 1.0)
    assert (config.schedule.name, config.schedule.gamma, config.unipre3d.views, config.data.num_points) == (
        "step", 0.8, 4, 1024)
    with pytest.raises(ValueError, match="needs model.name in"):
        create_task(load_recipe("unipre3d-object", ["model.name=spunet"]))
    with pytest.raises(ConfigError, match="best_metric must be one of"):
        load_recipe("unipre3d-object", ["train.best_metric=PSNRR"])


def test_two_steps_log_loss_psnr_previews_and_evaluate_the_average(pretrained):
    config, out, result = pretrained
    assert result.step == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(0 < r["PSNR"] < 100 for r in steps)
    assert all(r["grad_norm"] >= 0 for r in steps)
    evaluation = result.metrics["shapenet"]
    assert evaluation["count"] == 3 and evaluation["loss"] > 0  # 15 objects: 11 train, 3 val, 1 test
    for step in (1, 2):
        with Image.open(out / "previews" / f"step_{step:07d}.png") as image:
            assert image.format == "PNG" and image.size[0] > image.size[1] > 100
    meta = read_meta(out / "best.safetensors")
    assert meta.step == 2 and meta.class_names == {"shapenet": []}
    # the evaluation ran on the weight average that the checkpoint holds, not on the raw weights
    task = create_task(config)
    datasets = {"shapenet": task.dataset(config.data.sources["shapenet"], "val", train=False)}
    scores = {}
    for name, state in (("average", load_file(out / "last.safetensors")),
                        ("raw", read_train_state(out / "last.safetensors")["model"])):
        model = task.build_model()
        model.load_state_dict(state)
        scores[name] = task.evaluate(model, datasets, device=torch.device("cpu"),
                                     autocast=contextlib.nullcontext)
    assert scores["average"]["shapenet"]["PSNR"] == pytest.approx(evaluation["PSNR"], rel=1e-5)
    assert abs(scores["raw"]["shapenet"]["PSNR"] - evaluation["PSNR"]) > 1e-3


def test_evaluation_reports_the_psnr_of_the_views_the_2d_branch_did_not_see(pretrained):
    config, out, result = pretrained
    task = create_task(config)
    dataset = task.dataset(config.data.sources["shapenet"], "val", train=False)
    model = task.build_model()
    model.load_state_dict(load_file(out / "last.safetensors"))
    model.eval()
    with torch.no_grad():
        renders, targets = task.level.render(model, task.collate([dataset[i] for i in range(len(dataset))]))
    values = psnr(renders, targets)  # (objects, views); view 0 is the reference view
    assert values.shape == (3, 2)
    evaluation = result.metrics["shapenet"]
    assert evaluation["PSNR"] == pytest.approx(float(values.mean()), rel=1e-5)
    assert evaluation["PSNR/novel"] == pytest.approx(float(values[:, 1:].mean()), rel=1e-5)
    assert evaluation["PSNR/novel"] != pytest.approx(evaluation["PSNR"], rel=1e-6)


def test_object_frame_puts_clouds_and_cameras_in_the_object_datasets_frame(cache_dir):
    settings = [f"data.cache_dir={cache_dir}", *TINY_RENDERS]
    plain = create_task(load_recipe("unipre3d-object", settings))
    moved = create_task(load_recipe("unipre3d-object", [*settings, "unipre3d.object_frame=unit-y-up"]))
    source = plain.config.data.sources["shapenet"]
    before, after = (task.dataset(source, "val", train=False)[0] for task in (plain, moved))
    stored = torch.from_numpy(from_camera_frame(before.points.double().numpy()))
    torch.testing.assert_close(after.points, normalize_unit_sphere(stored).float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_pixels(after), _pixels(before), atol=1e-3, rtol=1e-5)  # same pixels
    # training items are augmented first (about the cameras' vertical), then moved
    trained = moved.dataset(source, "train", train=True)[0]
    torch.testing.assert_close(trained.points.norm(dim=1).max(), torch.tensor(1.0))
    with pytest.raises(ConfigError, match="unipre3d.object_frame must be 'cameras' or 'unit-y-up'"):
        load_recipe("unipre3d-object", ["unipre3d.object_frame=unit"])
    scene = load_recipe("unipre3d-scene", [f"data.cache_dir={cache_dir}", "unipre3d.object_frame=unit-y-up"])
    with pytest.raises(ValueError, match="setting of the object level"):
        create_task(scene).dataset(scene.data.sources["scannet"], "train", train=True)


def _pixels(sample):
    camera = sample.points @ sample.viewmats[:, :3, :3].transpose(1, 2) + sample.viewmats[:, None, :3, 3]
    projected = camera @ sample.Ks.transpose(1, 2)
    return projected[..., :2] / projected[..., 2:]


def test_export_backbone_loads_into_the_fine_tuning_classifier(pretrained, tmp_path, cache_dir, capsys):
    _, out, _ = pretrained
    exported = tmp_path / "backbone.safetensors"
    assert main_rc(["export-backbone", str(out / "last.safetensors"), "--out", str(exported)]) == 0
    assert "model.weights=" in capsys.readouterr().out
    backbone = load_file(exported)
    checkpoint = load_file(out / "last.safetensors")
    assert all(torch.equal(value, checkpoint[f"backbone.{key}"]) for key, value in backbone.items())
    classifier = PointMAE(num_classes=15, num_groups=8, group_size=8, depth=1, dim=24, heads=2)
    report = load_weights(classifier, exported)
    assert report.unexpected == () and report.missing
    assert all(key.startswith("cls_head_finetune.") for key in report.missing)
    # the fine-tuning recipe loads it with model.weights
    recipe = load_recipe("pointmae-finetune-scanobjectnn", [f"data.cache_dir={cache_dir}", *BACKBONE,
                                                             f"model.weights={exported}"])
    state = create_task(recipe).build_model().state_dict()
    assert all(torch.equal(state[key], value) for key, value in backbone.items())
    assert main_rc(["export-backbone", str(tmp_path / "missing.safetensors"), "--out", str(exported)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_reports_the_validation_psnr_of_the_checkpoint(pretrained, capsys):
    """``ppt eval`` of a pre-training checkpoint: the metrics its run logged for the same weights (best.safetensors
    holds the average that the step-2 evaluation scored)."""
    _, out, result = pretrained
    assert main_rc(["eval", str(out / "best.safetensors"), "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    logged = result.metrics["shapenet"]
    assert printed[-2:] == ["shapenet (val split)",
                            f"loss {logged['loss']:.4f}   PSNR {logged['PSNR']:.4f}   (3 samples)   "
                            f"PSNR/novel {logged['PSNR/novel']:.4f}"]


def main_rc(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code
