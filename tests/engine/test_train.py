import json

import pytest
import torch
from safetensors.torch import load_file

from ppt.engine import CheckpointError, load_recipe, read_meta, read_train_state, train
from ppt.engine.checkpoint import state_path
from ppt.engine.trainer import Precision


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_scene_recipe_trains_two_steps_and_checkpoints(tmp_path, scene_overrides):
    config = load_recipe("spunet-scannet", [*scene_overrides, "train.steps=2"])
    result = train(config, tmp_path / "run", recipe="spunet-scannet", progress=False)
    assert result.step == 2 and len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    records = _log(tmp_path / "run")
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    evaluation = next(r["eval"] for r in records if "eval" in r)
    assert set(evaluation) == {"scannet"} and 0 <= evaluation["scannet"]["mIoU"] <= 1 and evaluation["scannet"]["count"] > 0
    meta = read_meta(tmp_path / "run" / "last.safetensors")
    assert meta.step == 2 and len(meta.class_names["scannet"]) == 20 and meta.provenance["recipe"] == "spunet-scannet"
    assert {"ppt", "torch", "time"} <= set(meta.provenance) and meta.config["model"]["channels"] == [4, 8, 8, 4]
    state = torch.load(state_path(tmp_path / "run" / "last.safetensors"), weights_only=True)
    assert state["step"] == 2 and state["optimizer"]["state"]
    assert (tmp_path / "run" / "best.safetensors").is_file() and (tmp_path / "run" / "config.yaml").is_file()
    with pytest.raises(ValueError, match="already holds a run.*--resume"):
        train(config, tmp_path / "run", progress=False)


def test_object_recipe_trains_two_steps_with_frozen_backbone(tmp_path, object_overrides):
    config = load_recipe("dapt-scanobjectnn", [*object_overrides, "train.steps=2"])
    result = train(config, tmp_path / "run", recipe="dapt-scanobjectnn", progress=False)
    assert result.step == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert 0 <= result.metrics["scanobjectnn"]["allAcc"] <= 1
    assert result.metrics["scanobjectnn"]["count"] == 15  # one test object per class
    state = read_train_state(tmp_path / "run" / "last.safetensors")
    trainable = sum(len(group["params"]) for group in state["optimizer"]["param_groups"])
    from ppt.engine import create_task

    model = create_task(config).build_model()
    assert trainable == sum(p.requires_grad for p in model.parameters()) < len(list(model.parameters()))


def test_resume_continues_exactly(tmp_path, scene_overrides):
    # 5 steps of 2 per epoch: the interruption after step 3 falls inside epoch 1
    config = load_recipe("spunet-scannet", [*scene_overrides, "train.steps=5"])
    whole = train(config, tmp_path / "whole", progress=False)
    first = train(config, tmp_path / "split", stop_after=3, progress=False)
    assert first.step == 3 and not (tmp_path / "split" / "best.safetensors").exists()
    second = train(config, tmp_path / "split", resume=True, progress=False)
    assert first.losses + second.losses == pytest.approx(whole.losses, rel=1e-6, abs=1e-7)
    logged = [[r["loss"] for r in _log(tmp_path / run) if "loss" in r] for run in ("whole", "split")]
    assert logged[1] == pytest.approx(logged[0], rel=1e-6, abs=1e-7) and len(logged[1]) == 5
    a, b = load_file(tmp_path / "whole" / "last.safetensors"), load_file(tmp_path / "split" / "last.safetensors")
    assert all(torch.allclose(a[key].double(), b[key].double(), rtol=1e-5, atol=1e-7) for key in a)
    with pytest.raises(ValueError, match=r"config differs .*train.seed: 0 -> 1"):
        train(load_recipe("spunet-scannet", [*scene_overrides, "train.steps=5", "train.seed=1"]), tmp_path / "split",
              resume=True, progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(config, tmp_path / "empty", resume=True, progress=False)


def test_corrupt_checkpoint_files(tmp_path, scene_overrides):
    config = load_recipe("spunet-scannet", [*scene_overrides, "train.steps=1"])
    train(config, tmp_path / "run", progress=False)
    last = tmp_path / "run" / "last.safetensors"
    raw = last.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors file"):
        read_meta(cut)
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(1)}, str(bare))
    with pytest.raises(CheckpointError, match="without ppt training metadata"):
        read_meta(bare)
    state_path(last).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(CheckpointError, match=r"last.state.pt: cannot be read with torch.load\(weights_only=True\)"):
        read_train_state(last)
    torch.save({"step": 1}, state_path(last))
    with pytest.raises(CheckpointError, match="not a ppt training state"):
        read_train_state(last)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_meta(tmp_path / "missing.safetensors")


def test_amp_bf16_on_cpu_with_the_object_classifier(tmp_path, object_overrides):
    precision = Precision("bf16", torch.device("cpu"))
    with precision.autocast():
        assert torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.bfloat16
    assert Precision("auto", torch.device("cpu")).mode == "none" and not Precision("none", torch.device("cpu")).scaler.is_enabled()
    config = load_recipe("pointmae-finetune-scanobjectnn", [*object_overrides, "train.steps=2", "train.amp=bf16"])
    result = train(config, tmp_path / "run", progress=False)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    with pytest.raises(ValueError, match="train.amp must be"):
        Precision("fp8", torch.device("cpu"))


def test_amp_bf16_on_cpu_with_the_sparse_unet(tmp_path, scene_overrides):
    config = load_recipe("spunet-scannet", [*scene_overrides, "train.steps=2", "train.amp=bf16"])
    result = train(config, tmp_path / "run", progress=False)
    assert all(torch.isfinite(torch.tensor(result.losses)))


@pytest.mark.parametrize("recipe, source, classes", [("spunet-s3dis", "s3dis", 13), ("spunet-structured3d", "structured3d", 25)])
def test_other_scene_recipes_train_a_step(tmp_path, scene_overrides, recipe, source, classes):
    result = train(load_recipe(recipe, [*scene_overrides, "train.steps=1"]), tmp_path / "run", progress=False)
    assert result.step == 1 and torch.isfinite(torch.tensor(result.losses)).all()
    assert result.metrics[source]["count"] > 0
    assert len(read_meta(tmp_path / "run" / "last.safetensors").class_names[source]) == classes
