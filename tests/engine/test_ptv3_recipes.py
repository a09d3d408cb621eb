"""The Point Transformer V3 recipes through the real ``ppt`` command: ptv3-scannet, ptv3-s3dis and
ppt-joint-ptv3 train 2 steps on tiny synthetic rooms; a run resumes; ``ppt eval`` reads the checkpoint."""

import json

import pytest

from tests.engine.conftest import set_options

TINY_PTV3 = [
    "model.ptv3.stride=[2,2]", "model.ptv3.enc_depths=[1,1,1]", "model.ptv3.enc_channels=[8,16,16]",
    "model.ptv3.enc_num_head=[1,2,2]", "model.ptv3.enc_patch_size=[32,32,32]", "model.ptv3.dec_depths=[1,1]",
    "model.ptv3.dec_channels=[8,16]", "model.ptv3.dec_num_head=[2,2]", "model.ptv3.dec_patch_size=[32,32]",
]


@pytest.mark.parametrize("recipe", ["ptv3-scannet", "ptv3-s3dis",
                                    pytest.param("ppt-joint-ptv3", marks=pytest.mark.slow)])
def test_recipe_trains_two_steps(recipe, tmp_path, scene_overrides, ppt_command):
    extra = ["model.ppt.context_channels=8"] if recipe.startswith("ppt") else []
    out = tmp_path / "run"
    result = ppt_command("train", recipe, "--out", out, "--no-progress",
                         *set_options([*scene_overrides, *TINY_PTV3, *extra, "train.steps=2"]))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in records if "loss" in record]
    assert len(losses) == 2 and all(loss == loss and loss > 0 for loss in losses)
    assert "mIoU" in json.dumps(records[-1])
    assert (out / "last.safetensors").is_file()


@pytest.mark.slow
def test_ptv3_run_resumes_and_evaluates(tmp_path, scene_overrides, ppt_command):
    out = tmp_path / "run"
    options = set_options([*scene_overrides, *TINY_PTV3, "train.steps=3"])
    first = ppt_command("train", "ptv3-scannet", "--out", out, "--no-progress", "--stop-after", "2", *options)
    assert first.returncode == 0, first.stderr
    second = ppt_command("train", "ptv3-scannet", "--out", out, "--no-progress", "--resume", *options)
    assert second.returncode == 0, second.stderr
    steps = [json.loads(line).get("step") for line in (out / "log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3]
    evaluated = ppt_command("eval", out / "last.safetensors", "--no-progress")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "ptv3-scannet at step 3" in evaluated.stdout and "mIoU" in evaluated.stdout
