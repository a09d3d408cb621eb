"""The held-out validation split of object sources (``data.sources.<name>.holdout``): a stratified,
seeded part of the training split, left out of training."""

from collections import Counter

import pytest

from ppt.data.objects.dataset import stratified_holdout
from ppt.engine import load_recipe, train
from ppt.engine.config import ConfigError
from ppt.engine.tasks import create_task


def test_stratified_holdout_takes_the_fraction_of_each_class_by_seed():
    labels = [0] * 8 + [1] * 4 + [2] * 3
    kept, held = stratified_holdout(labels, 0.25, seed=0)
    assert sorted(kept + held) == list(range(len(labels))) and not set(kept) & set(held)
    assert Counter(labels[i] for i in held) == {0: 2, 1: 1, 2: 1}  # 0.75 of class 2 rounds up to 1
    assert kept == sorted(kept) and held == sorted(held)
    assert stratified_holdout(labels, 0.25, seed=0) == (kept, held)  # reproducible
    assert any(stratified_holdout(labels, 0.25, seed=s)[1] != held for s in range(1, 5))  # the seed draws them
    assert stratified_holdout(labels, 0.0, seed=0) == (list(range(len(labels))), [])
    with pytest.raises(ValueError, match=r"holdout fraction must lie in \[0, 1\)"):
        stratified_holdout(labels, 1.0, seed=0)


def _config(object_overrides, *extra):
    return load_recipe("pointmae-finetune-scanobjectnn", [*object_overrides, "data.synthetic.train_per_class=4",
                                                          *extra])


def test_holdout_split_is_disjoint_from_training_and_independent_of_the_training_seed(object_overrides):
    names = {}
    for seed in (0, 1):
        config = _config(object_overrides, "data.sources.scanobjectnn.holdout=0.25", f"train.seed={seed}")
        task, source = create_task(config), config.data.sources["scanobjectnn"]
        train_set = task.dataset(source, "train", train=True)
        held = task.dataset(source, "holdout", train=False)
        train_names = {train_set[i].name for i in range(len(train_set))}
        names[seed] = [held[i].name for i in range(len(held))]
        assert (len(train_set), len(held)) == (45, 15)  # 3 of each class's 4 train, 1 held out
        assert Counter(held[i].label for i in range(len(held))) == {label: 1 for label in range(15)}
        assert not train_names & set(names[seed]) and len(train_names) == 45
        assert len(task.dataset(source, "test", train=False)) == 15  # other splits are untouched
    assert names[0] == names[1]

    other = _config(object_overrides, "data.sources.scanobjectnn.holdout=0.25", "data.sources.scanobjectnn.holdout_seed=3")
    task = create_task(other)
    held = task.dataset(other.data.sources["scanobjectnn"], "holdout", train=False)
    assert [held[i].name for i in range(len(held))] != names[0]


def test_holdout_needs_a_fraction(object_overrides):
    config = _config(object_overrides)
    with pytest.raises(ValueError, match="'holdout' split of a scanobjectnn source needs its holdout fraction"):
        create_task(config).dataset(config.data.sources["scanobjectnn"], "holdout", train=False)
    with pytest.raises(ConfigError, match=r"data.sources.scanobjectnn.holdout must be in \[0, 1\)"):
        _config(object_overrides, "data.sources.scanobjectnn.holdout=1.0")


def test_training_validates_on_the_holdout_split(tmp_path, object_overrides):
    config = _config(object_overrides, "data.sources.scanobjectnn.holdout=0.25",
                     "data.sources.scanobjectnn.val_split=holdout", "train.steps=1")
    result = train(config, tmp_path / "run", recipe="pointmae-finetune-scanobjectnn", progress=False)
    assert result.metrics["scanobjectnn"]["count"] == 15
