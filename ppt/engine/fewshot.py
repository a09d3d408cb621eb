"""Few-shot evaluation: train a recipe once per fold of ``{way}way_{shot}shot/{fold}.pkl`` and report
the mean ± standard deviation of the test accuracy over the folds (Point-BERT / Point-MAE protocol;
``ppt fewshot``).

Each fold trains from the same initial weights (``model.weights``) into ``OUT/fold{k}/``; a fold
whose run is already complete is read back instead of trained again, and an interrupted one is
resumed, so a long loop can be restarted. The accuracy of a fold is its evaluation at the last step
(Point-MAE reports the best over epochs, which picks on the test set and reads higher).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from ppt.engine.checkpoint import read_meta
from ppt.engine.config import ConfigError, RecipeConfig, config_to_dict, load_recipe
from ppt.engine.trainer import train

__all__ = ["FewShotResult", "run_fewshot"]


@dataclass
class FewShotResult:
    folds: list[int]
    accuracies: list[float]  # overall accuracy (allAcc) per fold, in [0, 1]
    mean: float
    std: float  # population standard deviation over the folds
    out: Path

    def summary(self) -> str:
        return (f"{len(self.folds)} folds: accuracy {100 * self.mean:.2f} ± {100 * self.std:.2f} % "
                f"(folds: {', '.join(f'{100 * a:.2f}' for a in self.accuracies)})")


def _fewshot_source(config: RecipeConfig, recipe: str) -> str:
    names = [name for name, source in config.data.sources.items() if source.dataset == "modelnet40_fewshot"]
    if len(names) != 1 or len(config.data.sources) != 1:
        raise ConfigError(f"ppt fewshot: recipe {recipe} must have exactly one data source of dataset "
                          f"'modelnet40_fewshot', got {[s.dataset for s in config.data.sources.values()]}")
    return names[0]


def _fold_accuracy(config: RecipeConfig, out: Path, recipe: str, source: str, progress: bool) -> float:
    last = out / "last.safetensors"
    if last.is_file():
        meta = read_meta(last)
        if meta.step == config.train.steps and source in meta.metrics:
            accuracy = meta.metrics[source]["allAcc"]  # metadata is strict JSON: null for NaN
            return float("nan") if accuracy is None else float(accuracy)
    result = train(config, out, recipe=recipe, resume=last.is_file(), progress=progress)
    return float(result.metrics[source]["allAcc"])


def run_fewshot(recipe: str, out: str | PathLike, *, folds: Sequence[int], overrides: Sequence[str] = (),
                progress: bool = True) -> FewShotResult:
    """Train ``recipe`` (with ``overrides``) on each fold of ``folds`` and write ``OUT/fewshot.json``."""
    out = Path(out)
    if not folds:
        raise ConfigError("ppt fewshot: no folds to run")
    name = recipe.rsplit("/", 1)[-1].removesuffix(".yaml")
    config = load_recipe(recipe, overrides)
    source = _fewshot_source(config, recipe)
    accuracies = []
    for fold in folds:
        config = load_recipe(recipe, [*overrides, f"data.sources.{source}.fold={fold}"])
        accuracy = _fold_accuracy(config, out / f"fold{fold}", name, source, progress)
        accuracies.append(accuracy)
        print(f"fold {fold}: accuracy {100 * accuracy:.2f} %", flush=True)
    result = FewShotResult(list(folds), accuracies, float(np.mean(accuracies)), float(np.std(accuracies)), out)
    settings = config.data.sources[source]
    out.mkdir(parents=True, exist_ok=True)
    (out / "fewshot.json").write_text(json.dumps({
        "recipe": name, "way": settings.way, "shot": settings.shot, "folds": result.folds,
        "accuracy": result.accuracies, "mean": result.mean, "std": result.std,
        "config": config_to_dict(config)}, indent=1))
    return result
