"""The outdoor recipes through the real ``ppt`` command: two training steps each on tiny synthetic
sweeps written to the cache on first use (as a fresh directory would), then per-dataset metrics."""

import json

import pytest

from ppt.engine import create_task, load_recipe
from tests.engine.conftest import set_options

TINY_SWEEPS = [
    "data.synthetic.scenes=3", "data.synthetic.azimuth_steps=48", "data.grid_size=0.5", "model.base_channels=4",
    "model.channels=[4,8,8,4]", "model.layers=[1,1,1,1]", "train.tensorboard=false", "train.eval_every=0",
    "train.checkpoint_every=0", "train.amp=none", "train.steps=2",
]
RECIPES = {"spunet-semantickitti": ["semantickitti"], "spunet-nuscenes": ["nuscenes"], "spunet-waymo": ["waymo"],
           "ppt-joint-outdoor": ["nuscenes", "semantickitti", "waymo"]}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_outdoor_recipe_trains_two_steps_from_a_fresh_directory(recipe, tmp_path, ppt_command):
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SWEEPS]
    if recipe == "ppt-joint-outdoor":
        overrides.append("model.ppt.context_channels=8")
    run = ppt_command("train", recipe, "--out", tmp_path / "run", *set_options(overrides), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    for source in RECIPES[recipe]:
        assert f"writing synthetic {source} data" in run.stdout
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    evaluation = [r["eval"] for r in records if "eval" in r][-1]
    for source in RECIPES[recipe]:
        assert 0.0 <= evaluation[source]["mIoU"] <= 1.0
    assert (tmp_path / "run" / "last.safetensors").is_file()
    if recipe == "ppt-joint-outdoor":  # ppt eval: whole sweeps, clipped per source, by fragment voting
        evaluated = ppt_command("eval", tmp_path / "run" / "last.safetensors", cwd=tmp_path)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        for class_name in ("traffic-sign", "driveable_surface", "Lane Marker"):
            assert class_name in evaluated.stdout


def test_outdoor_recipes_follow_pointcepts_configs():
    kitti = load_recipe("spunet-semantickitti")
    task = create_task(kitti)
    assert task.in_channels == 4 and task.num_classes == 19
    assert (kitti.data.grid_size, kitti.optim.name, kitti.optim.lr, kitti.optim.weight_decay) == (
        0.05, "adamw", 0.002, 0.005)
    assert create_task(load_recipe("spunet-nuscenes")).num_classes == 16
    assert create_task(load_recipe("spunet-waymo")).num_classes == 22
    joint = load_recipe("ppt-joint-outdoor")
    assert joint.model.ppt.conditions == ["SemanticKITTI", "nuScenes", "Waymo"] and joint.data.mixed_batches
    assert joint.model.ppt.head == "lang" and joint.model.ppt.zero_init is False
    assert joint.data.sources["semantickitti"].point_cloud_range == [-75.2, -75.2, -4, 75.2, 75.2, 2]
    with pytest.raises(ValueError, match=r"data.sources.semantickitti.point_cloud_range must be \[x_min"):
        load_recipe("spunet-semantickitti", ["data.sources.semantickitti.point_cloud_range=[1,2]"])


def test_joint_outdoor_head_uses_pointcepts_class_descriptions():
    from ppt.engine.tasks.prompt_segmentation import PromptSegmentationTask

    config = load_recipe("ppt-joint-outdoor", ["model.ppt.context_channels=8", "model.ppt.text=minilm",
                                               "model.base_channels=4", "model.channels=[4,8,8,4]",
                                               "model.layers=[1,1,1,1]"])
    task = PromptSegmentationTask(config)
    assert task.class_names["nuscenes"][10] == "driveable_surface"  # metrics keep the dataset's names
    model = task.build_model()
    assert model.class_names["nuScenes"][10] == "path suitable or safe for driving"
    assert model.class_names["SemanticKITTI"][6] == "person who rides a bicycle"
    assert len(model.union_names) == len(set(model.union_names)) < 19 + 16 + 22  # shared names share a row
