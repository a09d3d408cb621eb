import pytest

from ppt.engine import ConfigError, list_recipes, load_recipe
from ppt.engine.config import config_from_dict, config_to_dict


def test_shipped_recipes_load():
    names = list_recipes()
    assert {"spunet-scannet", "spunet-s3dis", "spunet-structured3d", "dapt-scanobjectnn",
            "pointmae-finetune-scanobjectnn"} <= set(names)
    for name in names:
        config = load_recipe(name)
        assert config.data.sources and config.description
    scannet = load_recipe("spunet-scannet")
    assert (scannet.optim.name, scannet.optim.lr, scannet.optim.momentum, scannet.optim.nesterov) == ("sgd", 0.05, 0.9, True)
    assert (scannet.schedule.name, scannet.schedule.pct_start, scannet.data.grid_size) == ("onecycle", 0.05, 0.02)
    assert load_recipe("spunet-s3dis").data.feat_keys == ["coord", "color"]
    dapt = load_recipe("dapt-scanobjectnn")
    assert (dapt.optim.name, dapt.optim.lr, dapt.optim.weight_decay, dapt.data.batch_size, dapt.train.grad_clip) == \
        ("adamw", 5e-4, 0.05, 32, 10.0)


def test_overrides_and_root_shorthand():
    config = load_recipe("spunet-scannet", ["train.steps=7", "data.root=/data/scannet", "model.channels=[4,4]",
                                            "model.layers=[1,1]", "optim.param_groups=[{pattern: '*final*', lr_scale: 0.1}]"])
    assert config.train.steps == 7 and config.model.channels == [4, 4]
    assert config.data.sources["scannet"].root == "/data/scannet"
    assert config.optim.param_groups[0].lr_scale == 0.1
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize("override, message", [
    ("train.stepz=3", r"train.stepz: .*valid keys of train: steps, seed, device"),
    ("trian.steps=3", r"valid keys of <top level>: task, description, data, model, optim, schedule, train"),
    ("train.steps=many", r"train.steps: .*could not be converted to Integer; valid keys of train: steps"),
    ("data.sources.scannet.rot=/x", r"valid keys of data.sources.scannet: dataset, root, ratio"),
    ("optim.nesterov=maybe", r"optim.nesterov: .*valid keys of optim: name, lr"),
    ("steps", r"expected key=value"),
])
def test_bad_keys_and_types_list_the_valid_keys(override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe("spunet-scannet", [override])


def test_unknown_recipe_and_root_of_several_sources(tmp_path):
    with pytest.raises(ConfigError, match="unknown recipe 'nope'; shipped recipes: .*spunet-scannet"):
        load_recipe("nope")
    joint = tmp_path / "joint.yaml"
    joint.write_text("data:\n  sources:\n    a: {dataset: scannet}\n    b: {dataset: s3dis, ratio: 0.5}\n")
    assert set(load_recipe(str(joint)).data.sources) == {"a", "b"}
    with pytest.raises(ConfigError, match="data.root sets the root of a recipe's only dataset.*data.sources.<name>.root"):
        load_recipe(str(joint), ["data.root=/x"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: regression\ndata:\n  sources:\n    a: {dataset: scannet}\n")
    with pytest.raises(ConfigError, match="task must be one of"):
        load_recipe(str(bad))


def test_values_that_cannot_work_are_listed_by_key():
    with pytest.raises(ConfigError, match=r"recipe spunet-scannet: data.batch_size must be >= 1, got 0; "
                                          r"data.grid_size must be > 0 \(metres\), got -0.05$"):
        load_recipe("spunet-scannet", ["data.batch_size=0", "data.grid_size=-0.05"])
    with pytest.raises(ConfigError, match=r"data.sources.scannet.ratio must be > 0, got 0.0"):
        load_recipe("spunet-scannet", ["data.sources.scannet.ratio=0"])
    # the SpUNet widths are checked only for the models built on a SpUNet
    assert load_recipe("dapt-scanobjectnn", ["model.channels=[1]"]).model.channels == [1]


def test_train_checks_a_config_built_in_python(tmp_path):
    from ppt.engine import train

    config = load_recipe("spunet-scannet")
    config.train.accumulate = 0
    with pytest.raises(ConfigError, match=r"^config: train.accumulate must be >= 1, got 0$"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="stop_after must be >= 1"):
        train(load_recipe("spunet-scannet"), tmp_path / "run", stop_after=0, progress=False)
