"""Point Prompt Training through the engine: the joint recipes train, mixed batches, per-dataset
evaluation (train log and ``ppt eval``), checkpoints with the text provenance, fine-tuning a joint
checkpoint on one dataset, prompt learning-rate groups."""

import json

import pytest
import torch
from safetensors.torch import load_file

from ppt.cli import main
from ppt.engine import build_optimizer, create_task, load_recipe, read_meta, train
from ppt.engine.inference import load_checkpoint
from ppt.engine.sampling import epoch_sampler

TINY_PPT = ["model.ppt.context_channels=8"]
DATASETS = ("structured3d", "scannet", "s3dis")


@pytest.fixture
def ppt_overrides(scene_overrides):
    return [*scene_overrides, *TINY_PPT]


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory, cache_dir):
    """A 2-step ppt-joint run (shared by the checkpoint, eval and fine-tune tests)."""
    from tests.engine.conftest import TINY_SCENE

    # One thread as the engine tests' autouse fixture, restored after: later test modules run on torch's default.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("ppt-joint")
        config = load_recipe("ppt-joint", [f"data.cache_dir={cache_dir}", *TINY_SCENE, *TINY_PPT, "train.steps=2"])
        return train(config, out, recipe="ppt-joint", progress=False)
    finally:
        torch.set_num_threads(threads)


def test_ppt_joint_trains_and_reports_each_dataset(joint_run):
    assert joint_run.step == 2 and all(torch.isfinite(torch.tensor(joint_run.losses)))
    assert set(joint_run.metrics) == set(DATASETS)
    assert all(0.0 <= joint_run.metrics[name]["mIoU"] <= 1.0 for name in DATASETS)
    records = [json.loads(line) for line in (joint_run.out / "log.jsonl").read_text().splitlines()]
    assert set(records[-1]["eval"]) == set(DATASETS)


def test_checkpoint_round_trip_keeps_the_text_provenance(joint_run):
    path = joint_run.out / "last.safetensors"
    meta = read_meta(path)
    model_meta = meta.provenance["ppt_model"]
    assert model_meta["conditions"] == ["Structured3D", "ScanNet", "S3DIS"]
    assert model_meta["head"] == "lang" and model_meta["adapter"] == "pdnorm"
    assert model_meta["text"]["provider"] == "minilm" and model_meta["text"]["dim"] == 384
    assert meta.class_names["s3dis"][:2] == ["ceiling", "floor"]
    loaded = load_checkpoint(path, device="cpu")
    stored = load_file(str(path))
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, stored[name]), name


def test_ppt_eval_reports_each_dataset(joint_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(joint_run.out / "last.safetensors"), "--no-progress", "--device", "cpu"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for name in DATASETS:
        assert f"{name} (val split)" in printed
    assert printed.count("mIoU ") == 3


def test_predict_chooses_the_dataset_of_a_joint_checkpoint(joint_run, cache_dir, tmp_path, ppt_command):
    """ppt-joint knows three label sets: predict takes the one the scene's layout names (or
    --condition), and asks when it cannot tell."""
    import shutil

    import numpy as np

    from ppt.data import read_scene_folder

    checkpoint = joint_run.out / "last.safetensors"
    synthetic = cache_dir / "synthetic"
    (scannet,) = (synthetic / "scannet-seed0-6scenes-density0.05" / "val").iterdir()
    (s3dis,) = (synthetic / "s3dis-seed0-6scenes-density0.05" / "Area_5").iterdir()
    run = ppt_command("predict", checkpoint, scannet, s3dis, "--out", tmp_path / "auto")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"{scannet}: ") and " as ScanNet, mIoU against its labels " in lines[0]
    assert lines[1].startswith(f"{s3dis}: ") and " as S3DIS, mIoU against its labels " in lines[1]
    predicted = np.load(tmp_path / "auto" / f"{scannet.name}.labels.npy")
    # the ScanNet prompt and classes: the same as the model's own prediction under condition ScanNet
    loaded = load_checkpoint(checkpoint, device="cpu")
    sample = read_scene_folder(scannet, name=scannet.name, condition="ScanNet", num_classes=20,
                               label_files=("segment20.npy",))
    expected = loaded.task.predict_scene(loaded.model, sample, device=loaded.device, autocast=loaded.precision.autocast)
    assert np.array_equal(predicted, expected.argmax(1).numpy())

    room = tmp_path / "room"  # the same points in a folder whose layout names no dataset
    room.mkdir()
    for name in ("coord", "color", "normal"):
        shutil.copy(scannet / f"{name}.npy", room)
    asked = ppt_command("predict", checkpoint, room, "--out", tmp_path / "asked")
    assert asked.returncode == 2 and asked.stdout == ""
    assert asked.stderr == (f"ppt predict: {room}: {checkpoint} was trained on 3 datasets, structured3d (Structured3D), "
                            "scannet (ScanNet), s3dis (S3DIS), and the scene's layout matches none of them; choose whose "
                            "classes to predict with --condition NAME\n")
    chosen = ppt_command("predict", checkpoint, room, "--out", tmp_path / "chosen", "--condition", "ScanNet")
    assert chosen.returncode == 0 and " as ScanNet -> " in chosen.stdout
    assert np.array_equal(np.load(tmp_path / "chosen" / "room.labels.npy"), predicted)
    other = ppt_command("predict", checkpoint, room, "--out", tmp_path / "other", "--dataset", "s3dis")
    assert other.returncode == 0 and " as S3DIS -> " in other.stdout
    assert np.load(tmp_path / "other" / "room.labels.npy").max() < 13
    unknown = ppt_command("predict", checkpoint, room, "--out", tmp_path / "x", "--condition", "Matterport3D")
    assert unknown.returncode == 2
    assert unknown.stderr == (f"ppt predict: --condition 'Matterport3D': {checkpoint} was trained on structured3d "
                              "(Structured3D), scannet (ScanNet), s3dis (S3DIS); name one of them\n")


def test_finetune_starts_from_the_joint_checkpoint(joint_run, ppt_overrides, tmp_path):
    weights = joint_run.out / "last.safetensors"
    config = load_recipe("ppt-finetune-scannet", [*ppt_overrides, f"model.weights={weights}", "train.steps=1"])
    model = create_task(config).build_model()
    stored = load_file(str(weights))
    assert all(torch.equal(tensor, stored[name]) for name, tensor in model.state_dict().items())
    result = train(config, tmp_path / "finetune", recipe="ppt-finetune-scannet", progress=False)
    assert result.step == 1 and set(result.metrics) == {"scannet"}


def test_naive_joint_trains_mixed_batches(ppt_overrides, tmp_path):
    config = load_recipe("naive-joint", [*ppt_overrides, "train.steps=2", "data.mixed_batches=true",
                                         "data.batch_size=3"])
    result = train(config, tmp_path / "naive", recipe="naive-joint", progress=False)
    assert result.step == 2 and set(result.metrics) == set(DATASETS)
    assert read_meta(tmp_path / "naive" / "last.safetensors").provenance["ppt_model"]["text"] == {}


def test_mixed_batch_loss_equals_separate_batches(ppt_overrides):
    """A mixed batch gives the point-weighted mean of the losses of its datasets run apart (PDNorm
    normalises each dataset with its own statistics, so the batch composition does not matter)."""
    config = load_recipe("ppt-joint", [*ppt_overrides, "model.ppt.zero_init=false"])
    task = create_task(config)
    torch.manual_seed(0)
    model = task.build_model().train()
    samples = {name: task.dataset(source, "train", train=True)[0] for name, source in config.data.sources.items()}
    mixed = task.collate(list(samples.values()))
    assert len(set(mixed.conditions)) == 3 and task.condition(mixed).shape == mixed.segment.shape
    total, labelled = 0.0, 0
    for sample in samples.values():
        batch = task.collate([sample])
        count = int((batch.segment >= 0).sum())
        total, labelled = total + task.loss(model, batch) * count, labelled + count
    torch.testing.assert_close(task.loss(model, mixed), total / labelled, rtol=1e-5, atol=1e-6)


def test_prompt_parameters_train_at_a_tenth_of_the_rate(ppt_overrides):
    for scale in (0.1, 1.0):
        config = load_recipe("ppt-joint", [*ppt_overrides, f"model.ppt.prompt_lr_scale={scale}",
                                           "model.ppt.head=unionized"])
        model = create_task(config).build_model()
        optimizer = build_optimizer(model, config.optim)
        rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
        assert rate[id(model.embedding_table.weight)] == pytest.approx(config.optim.lr * scale)
        assert rate[id(model.seg_head.weight)] == pytest.approx(config.optim.lr)


def test_bad_ppt_configs(ppt_overrides):
    with pytest.raises(ValueError, match="include every source"):
        create_task(load_recipe("single-scannet", [*ppt_overrides, "model.ppt.conditions=[S3DIS]"]))
    with pytest.raises(ValueError, match="no label smoothing"):
        create_task(load_recipe("naive-joint", [*ppt_overrides, "train.label_smoothing=0.1"]))
    with pytest.raises(ValueError, match="whole numbers"):
        epoch_sampler([4, 4], [1.0, 1.5], batch_size=1, accumulate=1, world_size=1, rank=0, seed=0)
