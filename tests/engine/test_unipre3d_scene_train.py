"""UniPre3D scene level through the engine: recipe, 2-step training on tiny synthetic frames, resume,
export-backbone into the SpUNet segmentation recipe."""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ppt.cli import main
from ppt.engine import create_task, load_recipe, read_meta, train
from ppt.engine.config import ConfigError
from ppt.models import SpUNet, UniPre3DScene, load_weights

SPUNET = ["model.base_channels=8", "model.channels=[8,8,8,8,8,8,8,8]", "model.layers=[1,1,1,1,1,1,1,1]"]
TINY_FRAMES = [
    # 3 rooms: 2 train, 1 val; 10 frames of 32 x 24 colour and 16 x 12 depth each
    "data.synthetic.scenes=3", "data.synthetic.frames=10", "data.synthetic.density=0.1",
    "unipre3d.frame_size=[16,12]", "unipre3d.views=2", "unipre3d.reference_distance=2", "unipre3d.head_hidden=8",
    *SPUNET, "train.tensorboard=false", "train.eval_every=0", "train.checkpoint_every=0", "train.amp=none",
    "train.ema_decay=0.5", "train.ema_start=1", "train.preview_every=1", "optim.lr=0.01",
]


@pytest.fixture(scope="module")
def overrides(tmp_path_factory):
    return [f"data.cache_dir={tmp_path_factory.mktemp('ppt-cache')}", *TINY_FRAMES]


def train_one_thread(config, out, recipe, **options):
    """``ppt.engine.train`` with one intra-op thread (tiny steps: as the single_thread fixture, which a
    module fixture cannot use)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(config, out, recipe=recipe, progress=False, **options)
    finally:
        torch.set_num_threads(threads)


def assert_resume_continues_exactly(config, recipe, whole, whole_losses, split):
    """One step of ``config`` into ``split``, stopped, then resumed to the end: the losses and the last
    checkpoint are those of the uninterrupted run in ``whole``."""
    first = train_one_thread(config, split, recipe, stop_after=1)
    second = train_one_thread(config, split, recipe, resume=True)
    assert first.step == 1 and second.step == 2
    assert first.losses + second.losses == pytest.approx(whole_losses, rel=1e-5, abs=1e-7)
    a, b = load_file(whole / "last.safetensors"), load_file(split / "last.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[key].double(), b[key].double(), rtol=1e-4, atol=1e-6) for key in a)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, overrides):
    out = tmp_path_factory.mktemp("unipre3d-scene") / "run"
    config = load_recipe("unipre3d-scene", [*overrides, "train.steps=2"])
    return config, out, train_one_thread(config, out, "unipre3d-scene")


def test_recipe_has_the_official_settings():
    config = load_recipe("unipre3d-scene")
    assert (config.optim.name, config.optim.lr, config.optim.eps, config.train.grad_clip) == ("adamw", 1e-4, 1e-15, 1.0)
    assert (config.schedule.name, config.schedule.gamma, config.train.ema_decay) == ("step", 0.9, 0.995)
    assert (config.unipre3d.views, config.unipre3d.frame_size, config.unipre3d.reference_distance) == (8, [160, 120], 5)
    assert (config.unipre3d.foreground_weight, config.unipre3d.background_weight, config.data.augment) == (1, 1, False)
    model = create_task(config).build_model()
    assert isinstance(model, UniPre3DScene) and isinstance(model.backbone, SpUNet)
    assert (model.renderer.width, model.renderer.height) == (160, 120)
    assert model.renderer.background.tolist() == [1, 1, 1]
    with pytest.raises(ConfigError, match="valid keys of data.sources.scannet: .*frames_root"):
        load_recipe("unipre3d-scene", ["data.sources.scannet.frame_root=/x"])
    with pytest.raises(ConfigError, match="unipre3d.frame_size"):
        load_recipe("unipre3d-scene", ["unipre3d.frame_size=160"])


def test_bad_settings_name_what_to_change(overrides, tmp_path):
    def dataset(*extra):
        config = load_recipe("unipre3d-scene", [*overrides, *extra])
        return create_task(config).dataset(config.data.sources["scannet"], "train", train=True)

    with pytest.raises(ValueError, match="set data.augment=false"):
        dataset("data.augment=true")
    with pytest.raises(ValueError, match="frames_root needs its root"):
        dataset(f"data.sources.scannet.frames_root={tmp_path}")
    with pytest.raises(ValueError, match=r"frame_size must be \[width, height\]"):
        dataset("unipre3d.frame_size=[16,12,3]")
    with pytest.raises(ValueError, match="reads datasets .*scannet-frames"):
        create_task(load_recipe("unipre3d-scene", ["data.sources.scannet.dataset=shapenet-renders"]))


def test_two_steps_log_loss_psnr_previews_and_evaluate(pretrained):
    config, out, result = pretrained
    assert result.step == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(0 < r["PSNR"] < 100 for r in steps)
    evaluation = result.metrics["scannet"]
    assert evaluation["count"] == 1 and evaluation["loss"] > 0 and 0 < evaluation["PSNR"] < 100
    for step in (1, 2):
        with Image.open(out / "previews" / f"step_{step:07d}.png") as image:
            # one row (the val scene): input points, reference, render and truth of 2 views
            assert image.format == "PNG" and image.size[0] > 2 * image.size[1] > 100
    meta = read_meta(out / "best.safetensors")
    assert meta.step == 2 and meta.class_names == {"scannet": []}


def test_real_data_roots(pretrained, overrides, tmp_path):
    """``root`` + ``frames_root`` as for real ScanNet: here the synthetic data, frames moved elsewhere."""
    import shutil

    from ppt.engine.tasks.unipre3d import SceneLevel

    config = pretrained[0]
    synthetic = SceneLevel.synthetic_root(config)
    root, frames = tmp_path / "scannet", tmp_path / "frames"
    shutil.copytree(synthetic, root, ignore=shutil.ignore_patterns("2D"))
    shutil.copytree(synthetic / "2D", frames)
    sources = [f"data.sources.scannet.root={root}", f"data.sources.scannet.frames_root={frames}"]
    task = create_task(load_recipe("unipre3d-scene", [*overrides, *sources]))
    dataset = task.dataset(task.config.data.sources["scannet"], "val", train=False)
    assert dataset.frames_root == frames and len(dataset) == 1
    expected = create_task(config).dataset(config.data.sources["scannet"], "val", train=False)[0]
    assert torch.equal(dataset[0].images, expected.images) and dataset[0].frames == expected.frames
    task = create_task(load_recipe("unipre3d-scene", [*overrides, f"data.sources.scannet.root={root}"]))
    with pytest.raises(FileNotFoundError, match="frames_root"):  # <root>/2D by default
        task.dataset(task.config.data.sources["scannet"], "val", train=False)


def test_resume_continues_exactly(pretrained, overrides, tmp_path):
    config, whole, result = pretrained
    assert_resume_continues_exactly(config, "unipre3d-scene", whole, result.losses, tmp_path / "split")


def test_export_backbone_loads_into_the_segmentation_recipe(pretrained, overrides, tmp_path, capsys):
    _, out, _ = pretrained
    exported = tmp_path / "backbone.safetensors"
    with pytest.raises(SystemExit) as exit_info:
        main(["export-backbone", str(out / "last.safetensors"), "--out", str(exported)])
    assert exit_info.value.code == 0
    assert "unipre3d-scene backbone" in capsys.readouterr().out
    backbone, checkpoint = load_file(exported), load_file(out / "last.safetensors")
    assert backbone and all(torch.equal(value, checkpoint[f"backbone.{key}"]) for key, value in backbone.items())
    # the fusion and the Gaussian head stay behind
    assert not any(key.startswith(("fusion.", "head.", "adapter.")) for key in backbone)
    # spunet-scannet (20 classes) loads it with model.weights: only its final layer is left missing
    recipe = load_recipe("spunet-scannet", [overrides[0], *SPUNET, f"model.weights={exported}"])
    model = create_task(recipe).build_model()
    report = load_weights(model, exported)
    assert report.unexpected == () and set(report.missing) == {"final.weight", "final.bias"}
    state = model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in backbone.items())
