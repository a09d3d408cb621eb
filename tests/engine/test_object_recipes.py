"""The object recipes end to end on tiny generated data: DAPT / Point-MAE fine-tuning on ScanObjectNN
and ModelNet40 layouts, Point-MAE pre-training, the pretrain -> fine-tune chain, few-shot folds and
test voting."""

import json

import pytest
import torch
from torch import nn

from ppt.data.objects.transforms import ScaleAndTranslate
from ppt.engine import load_recipe, train
from ppt.engine.config import ConfigError
from ppt.engine.fewshot import run_fewshot
from ppt.engine.tasks.classification import vote_logits

PRETRAIN = ["model.num_groups=8", "model.decoder_depth=1"]  # 0.6 of 8 groups: 4 masked patches


def test_dapt_variant_switch_sets_the_official_per_variant_settings():
    expected = {"PB_T50_RS": (0.3, 0.2, ["cls", "prompt_mean", "patch_max"]),
                "OBJ_BG": (0.3, 0.5, ["cls", "prompt_mean", "patch_max"]),
                "OBJ_ONLY": (0.1, 0.0, ["cls", "prompt_mean"])}
    for variant, (drop_path, dropout, head) in expected.items():
        model = load_recipe("dapt-scanobjectnn", [f"data.sources.scanobjectnn.variant={variant}"]).model
        assert (model.drop_path, model.adapter_dropout, model.head_features) == (drop_path, dropout, head)
    with pytest.raises(ConfigError, match="pick: 'OBJ' is not one of"):
        load_recipe("dapt-scanobjectnn", ["data.sources.scanobjectnn.variant=OBJ"])
    modelnet = load_recipe("dapt-modelnet40").model
    assert (modelnet.rank, modelnet.num_groups, modelnet.head_features) == (72, 64, ["cls", "patch_max"])


@pytest.mark.parametrize("recipe, source", [("dapt-modelnet40", "modelnet40"),
                                            ("pointmae-finetune-modelnet40", "modelnet40")])
def test_modelnet40_recipes_train_two_steps_on_the_synthetic_layout(tmp_path, object_overrides, recipe, source, capsys):
    result = train(load_recipe(recipe, [*object_overrides, "train.steps=2"]), tmp_path / "run", recipe=recipe,
                   progress=False)
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert result.metrics[source]["count"] == 15  # the stand-in's 15 classes, one test object each
    assert "trainable of" in capsys.readouterr().out


def test_pretrain_then_finetune_loads_the_encoder(tmp_path, object_overrides, capsys, ppt_command):
    pre = train(load_recipe("pointmae-pretrain", [*object_overrides, *PRETRAIN, "train.steps=2"]), tmp_path / "pre",
                recipe="pointmae-pretrain", progress=False)
    assert len(pre.losses) == 2 and all(loss > 0 for loss in pre.losses)
    assert set(pre.metrics["shapenet55"]) == {"chamfer", "count"} and pre.metrics["shapenet55"]["chamfer"] > 0
    assert not (tmp_path / "pre" / "best.safetensors").exists()  # no accuracy to pick a best by
    capsys.readouterr()

    weights = tmp_path / "pre" / "last.safetensors"
    sets = [arg for value in (*object_overrides, "train.steps=1", f"model.weights={weights}") for arg in ("--set", value)]
    run = ppt_command("train", "dapt-scanobjectnn", "--out", tmp_path / "fine", "--no-progress", *sets)
    assert run.returncode == 0, run.stderr
    report = run.stdout
    # the encoder comes from the pre-training run; DAPT's own parts and the head start fresh
    assert "loaded point-mae weights; missing: cls_token, cls_pos," in report
    assert "unexpected: none" in report  # every encoder key has its place
    # the decoder is left out, and the report says so
    assert "ignored (not used by this model): MAE_decoder." in report and "mask_token" in report
    from safetensors.torch import load_file

    pretrained, tuned = load_file(str(weights)), load_file(str(tmp_path / "fine" / "last.safetensors"))
    # frozen under DAPT: the fine-tuned patch embedding is the pre-trained one
    key = next(k for k in pretrained if k.startswith("MAE_encoder.encoder.") and k.endswith("weight"))
    assert torch.equal(tuned[key.removeprefix("MAE_encoder.")], pretrained[key])


def test_fewshot_over_two_folds_reports_mean_and_std(tmp_path, object_overrides, capsys):
    overrides = [*object_overrides, "data.sources.modelnet40_fewshot.way=3", "data.sources.modelnet40_fewshot.shot=2",
                 "data.synthetic.test_per_class=2", "train.steps=1"]
    result = run_fewshot("pointmae-fewshot", tmp_path / "fs", folds=[0, 1], overrides=overrides, progress=False)
    assert len(result.accuracies) == 2 and all(0 <= a <= 1 for a in result.accuracies)
    assert result.mean == pytest.approx(sum(result.accuracies) / 2)
    assert result.std == pytest.approx(abs(result.accuracies[0] - result.accuracies[1]) / 2)
    saved = json.loads((tmp_path / "fs" / "fewshot.json").read_text())
    assert (saved["way"], saved["shot"], saved["folds"]) == (3, 2, [0, 1])
    assert "±" in result.summary()
    # the folds differ (each draws its own classes), and a finished fold is read back, not retrained
    assert (tmp_path / "fs" / "fold0" / "last.safetensors").is_file()
    again = run_fewshot("pointmae-fewshot", tmp_path / "fs", folds=[0, 1], overrides=overrides, progress=False)
    assert again.accuracies == result.accuracies
    assert "ppt train" not in capsys.readouterr().out.split("fold 1: accuracy")[-1]


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 4)

    def forward(self, points):
        return self.proj(points).mean(dim=1)


def test_voting_with_identity_augmentation_changes_nothing():
    torch.manual_seed(0)
    model, points = _Linear(), torch.randn(5, 32, 3)
    identity = ScaleAndTranslate(1.0, 1.0, 0.0)
    assert torch.allclose(vote_logits(model, points, 4, identity), model(points), atol=1e-6)


def test_voting_averages_the_logits_of_the_augmented_passes():
    # a model linear in the points: the vote equals the model at the mean scale and shift drawn
    torch.manual_seed(0)
    model, points = _Linear(), torch.randn(3, 16, 3)
    augment = ScaleAndTranslate()
    generator = torch.Generator().manual_seed(7)
    draws = [augment.draw(3, generator) for _ in range(5)]
    expected = sum(model(points * scale + shift) for scale, shift in draws) / 5
    assert torch.allclose(vote_logits(model, points, 5, augment, seed=7), expected, atol=1e-6)
    assert not torch.allclose(expected, model(points), atol=1e-3)


def test_eval_votes_option_runs_in_training(tmp_path, object_overrides):
    config = load_recipe("pointmae-finetune-scanobjectnn", [*object_overrides, "train.steps=1", "train.eval_votes=3"])
    result = train(config, tmp_path / "run", progress=False)
    assert result.metrics["scanobjectnn"]["count"] == 15


def test_fewshot_command_runs_folds_and_rejects_other_recipes(tmp_path, object_overrides, capsys):
    from ppt.cli import main

    with pytest.raises(SystemExit) as exit_code:
        main(["fewshot", "dapt-scanobjectnn", "--folds", "1"])
    assert exit_code.value.code == 2
    assert "exactly one data source of dataset 'modelnet40_fewshot'" in capsys.readouterr().err
    sets = [f"--set={item}" for item in [*object_overrides, "data.sources.modelnet40_fewshot.way=2",
                                         "data.sources.modelnet40_fewshot.shot=3", "data.synthetic.test_per_class=1",
                                         "train.steps=1"]]
    with pytest.raises(SystemExit) as exit_code:
        main(["fewshot", "pointmae-fewshot", "--folds", "1", "--out", str(tmp_path / "fs"), "--no-progress", *sets])
    assert exit_code.value.code == 0
    assert "pointmae-fewshot: 1 folds: accuracy" in capsys.readouterr().out
