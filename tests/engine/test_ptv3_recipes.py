"""The Point Transformer V3 recipes through the real ``ppt`` command: ptv3-scannet, ptv3-s3dis,
ptv3-scannet200 and ppt-joint-ptv3 train 2 steps on tiny synthetic rooms (ptv3-scannet200 from a fresh
cache, reporting ScanNet200's head / common / tail mIoU); a run resumes; ``ppt eval`` reads the checkpoint."""

import json

import pytest

from ppt.engine import load_recipe
from tests.engine.conftest import set_options

TINY_PTV3 = [
    "model.ptv3.stride=[2,2]", "model.ptv3.enc_depths=[1,1,1]", "model.ptv3.enc_channels=[8,16,16]",
    "model.ptv3.enc_num_head=[1,2,2]", "model.ptv3.enc_patch_size=[32,32,32]", "model.ptv3.dec_depths=[1,1]",
    "model.ptv3.dec_channels=[8,16]", "model.ptv3.dec_num_head=[2,2]", "model.ptv3.dec_patch_size=[32,32]",
]


@pytest.mark.parametrize("recipe, sources", [
    ("ptv3-scannet", {"scannet"}), ("ptv3-s3dis", {"s3dis"}),
    pytest.param("ppt-joint-ptv3", {"structured3d", "scannet", "s3dis"}, marks=pytest.mark.slow)])
def test_recipe_trains_two_steps(recipe, sources, tmp_path, scene_overrides, ppt_command):
    extra = ["model.ppt.context_channels=8"] if recipe.startswith("ppt") else []
    out = tmp_path / "run"
    result = ppt_command("train", recipe, "--out", out, "--no-progress",
                         *set_options([*scene_overrides, *TINY_PTV3, *extra, "train.steps=2"]))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in records if "loss" in record]
    assert len(losses) == 2 and all(loss == loss and loss > 0 for loss in losses)
    assert set(records[-1]["eval"]) == sources and all("mIoU" in result for result in records[-1]["eval"].values())
    assert (out / "last.safetensors").is_file()


def test_scannet200_recipe_trains_from_a_fresh_cache_and_reports_head_common_tail(tmp_path, scene_overrides,
                                                                                ppt_command):
    config = load_recipe("ptv3-scannet200")
    assert (config.model.name, config.data.feat_keys, config.optim.lr, config.data.point_max) == (
        "ptv3", ["color", "normal"], 0.006, 102400)
    out, cache = tmp_path / "run", tmp_path / "cache"
    fresh = [f"data.cache_dir={cache}", *scene_overrides[1:]]
    result = ppt_command("train", "ptv3-scannet200", "--out", out, "--no-progress",
                         *set_options([*fresh, *TINY_PTV3, "train.steps=2"]))
    assert result.returncode == 0, result.stderr
    assert any(path.name.startswith("scannet200-") for path in (cache / "synthetic").iterdir())
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len([record for record in records if "loss" in record]) == 2
    evaluation = records[-1]["eval"]["scannet200"]
    assert {"mIoU", "mIoU/head", "mIoU/common", "mIoU/tail"} <= set(evaluation)


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
