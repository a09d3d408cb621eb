"""Issue 22 item 3: PPT on synthetic datasets built so that its mechanisms matter.

Two datasets share the generator's rooms and sensor (ScanNet's capture, ``--capture scannet``) and
differ in one controlled way (``ppt.data.scenes.rooms.variants``); A is sampled twice as often as B:

- ``conflict`` (conflicting conventions): A in Structured3D's layout files cabinets as *cabinet*;
  B in ScanNet's layout files them as *otherfurniture* (``relabel cabinet=otherfurniture``). Both
  label sets hold both names, so restricting each dataset's softmax to its classes does not remove
  the conflict. Affected: cabinet and otherfurniture, in both datasets (cabinet is absent from B's
  ground truth after the relabel, so there it is B's otherfurniture IoU that shows it). One more
  arm, ``single-a`` (A alone), is the reference for A's classes.
- ``shift`` (capture shift, the same rooms and labels): A in ScanNet's layout as captured; B in
  Structured3D's layout with no colour and half the sampling density (``colors none``,
  ``density x0.5``). Affected: B's mIoU.

Arms (``ppt-segmentation`` recipes with sources A and B; one model widths for all, ``--set``):
``single`` (B alone; ``single-a``, A alone, where the scenario adds it), ``naive`` (shared batch
norm, one head over the union), ``ppt`` (PDNorm + language-guided head), ``decoupled`` (a head per
dataset, no prompts), ``pdnorm-unionized`` (PDNorm, union head), ``add`` (additive prompt adapter,
language-guided head). Every arm runs ``--steps`` steps with evaluation every ``--eval-every``
steps, for each seed.

Expected before running (the issue's hypotheses): on ``conflict`` the naive arm, which cannot
tell the datasets apart, labels B's cabinets toward A's majority convention, so B's
otherfurniture IoU falls below ``single``; PPT, whose prompts know the dataset, stays near
``single``. On ``shift`` the naive arm's shared statistics mix the two captures and B's mIoU
falls below ``single``; PPT's per-dataset normalisation stays near it.

Writes ``OUT/<scenario>/data`` (the datasets), ``OUT/<scenario>/recipes`` (one YAML per arm),
``OUT/<scenario>/runs/<arm>-seed<S>`` (each ``ppt train`` run, checkpointed at every evaluation; a
rerun skips finished runs and resumes a cut one from its last checkpoint),
``OUT/<scenario>/results.json`` / ``results.md`` (per arm and evaluation step: mean ± population
std over seeds, and each seed at the last evaluation; then every class's IoU at the last evaluation,
mean over seeds), ``OUT/<scenario>/curves.png`` (dataset B's
metrics against steps) and ``OUT/<scenario>/bars.png`` (at the last evaluation, one dot per seed).

Tiny check::

    python bench/experiments/ppt_mechanisms.py --out runs/ppt-mechanisms-tiny --steps 2 --eval-every 2 --seeds 0 \\
        --scenes 4 --density 0.05 --set model.base_channels=8 --set "model.channels=[8,8,8,8,8,8,8,8]" \\
        --set "model.layers=[1,1,1,1,1,1,1,1]"

The runs of docs/ppt.md: ``bench/results/ppt-mechanisms/run.sh``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from ppt.data.scenes.rooms import write_synthetic_rooms
from ppt.data.scenes.rooms.variants import RoomVariant
from ppt.engine.config import config_to_dict, load_recipe


@dataclass(frozen=True)
class Dataset:
    layout: str
    variant: RoomVariant
    seed: int
    density_scale: float = 1.0


@dataclass(frozen=True)
class Scenario:
    a: Dataset
    b: Dataset
    affected: tuple[str, ...]
    """classes whose IoU is reported next to each dataset's mIoU (where its ground truth has them)"""
    extra_arms: tuple[str, ...] = ()
    """arms beyond ARMS' defaults"""


SCENARIOS = {
    "conflict": Scenario(Dataset("structured3d", RoomVariant(capture="scannet"), seed=100),
                         Dataset("scannet", RoomVariant(relabel={"cabinet": "otherfurniture"}), seed=200),
                         ("otherfurniture", "cabinet"), extra_arms=("single-a",)),
    "shift": Scenario(Dataset("scannet", RoomVariant(), seed=100),
                      Dataset("structured3d", RoomVariant(capture="scannet", colors="none"), seed=200,
                              density_scale=0.5),
                      ()),
}
# arm -> (base recipe, model.ppt settings); the base's sources are replaced by A and B (single: B
# only, single-a: A only)
ARMS = {
    "single": ("single-scannet", {}),
    "single-a": ("single-scannet", {}),
    "naive": ("naive-joint", {}),
    "ppt": ("ppt-joint", {}),
    "decoupled": ("ppt-joint", {"head": "decoupled", "adapter": "none"}),
    "pdnorm-unionized": ("ppt-joint", {"head": "unionized", "adapter": "pdnorm"}),
    "add": ("ppt-joint", {"head": "lang", "adapter": "add"}),
}


def write_data(folder: Path, scenario: str, scenes: int, density: float) -> dict[str, Path]:
    roots = {}
    for name, dataset in zip("ab", (SCENARIOS[scenario].a, SCENARIOS[scenario].b)):
        root = folder / f"{name}-{dataset.layout}"
        if not root.is_dir():
            write_synthetic_rooms(root, dataset.layout, scenes, seed=dataset.seed,
                                  density=density * dataset.density_scale, variant=dataset.variant)
        roots[name] = root
    return roots


def write_recipe(path: Path, arm: str, scenario: str, roots: dict[str, Path], overrides: list[str]) -> None:
    base, settings = ARMS[arm]
    config = config_to_dict(load_recipe(base, overrides))
    a, b = SCENARIOS[scenario].a, SCENARIOS[scenario].b
    sources = {}
    if arm != "single":
        sources[a.layout] = {"dataset": a.layout, "root": str(roots["a"]), "ratio": 2.0}
    if arm != "single-a":
        sources[b.layout] = {"dataset": b.layout, "root": str(roots["b"]), "ratio": 1.0}
    config["data"]["sources"] = sources
    config["model"]["ppt"].update(settings)
    config["description"] = f"issue 22 {scenario}: {arm}"
    OmegaConf.save(OmegaConf.create(config), path)


def finished(run: Path, steps: int) -> bool:
    return (run / "log.jsonl").is_file() and any(record["step"] == steps for record in evaluations(run))


def evaluations(run: Path) -> list[dict]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if "eval" in record]


def summarize(folder: Path, scenario: str, arms: list[str], seeds: list[int]) -> dict:
    affected = SCENARIOS[scenario].affected
    table = {}
    for arm in arms:
        per_step: dict[int, dict[str, list[float]]] = {}
        for seed in seeds:
            run = folder / "runs" / f"{arm}-seed{seed}"
            if not (run / "log.jsonl").is_file():  # not started yet
                continue
            for record in evaluations(run):
                metrics = per_step.setdefault(record["step"], {})
                for source, values in record["eval"].items():
                    # a class absent from a dataset's ground truth has no IoU there
                    for key in ["mIoU", *(f"IoU/{name}" for name in affected)]:
                        if isinstance(values.get(key), float) and math.isfinite(values[key]):
                            metrics.setdefault(f"{source} {key}", {})[seed] = 100 * values[key]
        table[arm] = {step: {key: {"mean": statistics.mean(v.values()), "std": statistics.pstdev(v.values()),
                                   "n": len(v), "per_seed": v}
                             for key, v in metrics.items()} for step, metrics in sorted(per_step.items())}
    return table


def markdown(table: dict) -> str:
    """Mean ± population std over seeds per arm and evaluation step, then each seed's value at the
    last evaluation."""
    keys = sorted({key for steps in table.values() for metrics in steps.values() for key in metrics})
    lines = ["| arm | step | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for arm, steps in table.items():
        for step, metrics in steps.items():
            cells = [f"{metrics[k]['mean']:.1f} ± {metrics[k]['std']:.1f} (n={metrics[k]['n']})"
                     if k in metrics else "" for k in keys]
            lines.append(f"| {arm} | {step} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed at the last evaluation:", "", "| arm | step | " + " | ".join(keys) + " |",
              "|---|---|" + "---|" * len(keys)]
    for arm, steps in table.items():
        if steps:
            step, metrics = max(steps.items())
            cells = [", ".join(f"s{seed} {value:.1f}" for seed, value in metrics[k]["per_seed"].items())
                     if k in metrics else "" for k in keys]
            lines.append(f"| {arm} | {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def per_class_markdown(folder: Path, arms: list[str], seeds: list[int]) -> str:
    """Every class's IoU of each dataset at each arm's last evaluation, mean over the seeds that
    reached it (where the losses of a dataset fall, beyond the affected classes)."""
    iou: dict[str, dict[str, dict[str, list[float]]]] = {}  # dataset -> class -> arm -> per-seed values
    for arm in arms:
        for seed in seeds:
            run = folder / "runs" / f"{arm}-seed{seed}"
            if not (run / "log.jsonl").is_file() or not evaluations(run):
                continue
            for source, values in evaluations(run)[-1]["eval"].items():
                for key, value in values.items():
                    if key.startswith("IoU/") and isinstance(value, float) and math.isfinite(value):
                        iou.setdefault(source, {}).setdefault(key[4:], {}).setdefault(arm, []).append(100 * value)
    lines = []
    for source, classes in sorted(iou.items()):
        shown = [arm for arm in arms if any(arm in per_arm for per_arm in classes.values())]
        lines += ["", f"{source}: IoU of every class at the last evaluation, mean over seeds:", "",
                  "| class | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
        for name, per_arm in classes.items():
            cells = [f"{statistics.mean(per_arm[arm]):.1f}" if arm in per_arm else "" for arm in shown]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def reported_keys(table: dict, scenario: str) -> list[str]:
    """B's mIoU and affected-class IoUs, then A's, where any arm has them."""
    scenario_ = SCENARIOS[scenario]
    present = {key for steps in table.values() for metrics in steps.values() for key in metrics}
    keys = [f"{dataset.layout} {metric}" for dataset in (scenario_.b, scenario_.a)
            for metric in ["mIoU", *(f"IoU/{name}" for name in scenario_.affected)]]
    return [key for key in keys if key in present]


def dataset_role(scenario: str, key: str) -> str:
    return "dataset B" if key.startswith(SCENARIOS[scenario].b.layout + " ") else "dataset A"


def plot(table: dict, scenario: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = reported_keys(table, scenario)
    figure, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
    for axis, key in zip(axes[0], keys):
        for arm, steps in table.items():
            points = [(step, metrics[key]["mean"]) for step, metrics in steps.items() if key in metrics]
            if points:
                axis.plot(*zip(*points), "o-", ms=3, label=arm)
        axis.set(xlabel="step", ylabel=f"{key} (%)", title=f"{scenario}: {dataset_role(scenario, key)}")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_bars(table: dict, scenario: str, path: Path) -> None:
    """Each dataset's mIoU and affected-class IoUs per arm at each arm's last evaluation: bars of the
    mean over seeds, one dot per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = reported_keys(table, scenario)
    arms = [arm for arm, steps in table.items() if steps]
    figure, axis = plt.subplots(figsize=(max(5.0, 1.2 + 0.55 * len(arms) * len(keys)), 3.5))
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        label = f"{key} ({dataset_role(scenario, key)})"
        for a, arm in enumerate(arms):
            metrics = max(table[arm].items())[1]
            if key not in metrics:
                continue
            x = a + (k - (len(keys) - 1) / 2) * width
            axis.bar(x, metrics[key]["mean"], width, color=f"C{k}", label=label)
            label = None  # one legend entry per key
            values = list(metrics[key]["per_seed"].values())
            axis.plot([x] * len(values), values, "k.", ms=4)
    axis.set_xticks(range(len(arms)), arms, fontsize=8)
    axis.set(ylabel="IoU (%) at the last evaluation", title=f"{scenario}: mean and seeds")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def arms_of(scenario: str, chosen: list[str] | None) -> list[str]:
    if chosen is not None:
        return chosen
    return [arm for arm in ARMS if arm != "single-a" or arm in SCENARIOS[scenario].extra_arms]


def train_arms(folder: Path, scenario: str, args: argparse.Namespace) -> None:
    """Every arm and seed of one scenario not finished yet, seed by seed."""
    (folder / "recipes").mkdir(parents=True, exist_ok=True)
    roots = write_data(folder / "data", scenario, args.scenes, args.density)
    for seed in args.seeds:
        for arm in arms_of(scenario, args.arms):
            run = folder / "runs" / f"{arm}-seed{seed}"
            if finished(run, args.steps):
                continue
            recipe = folder / "recipes" / f"{arm}.yaml"
            write_recipe(recipe, arm, scenario, roots, args.set)
            command = [sys.executable, "-m", "ppt", "train", str(recipe), "--out", str(run), "--no-progress",
                       "--set", f"train.seed={seed}", "--set", f"train.steps={args.steps}",
                       "--set", f"train.eval_every={args.eval_every}",
                       "--set", f"train.checkpoint_every={args.eval_every}"]
            if (run / "last.state.pt").is_file():
                command.append("--resume")
            print(f"{scenario} {arm} seed {seed}: {' '.join(command)}", flush=True)
            subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), nargs="+", default=sorted(SCENARIOS))
    parser.add_argument("--arms", choices=list(ARMS), nargs="+", default=None,
                        help="default: every arm but single-a, plus the scenario's extra arms")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--scenes", type=int, default=40, help="rooms per dataset")
    parser.add_argument("--density", type=float, default=0.3, help="points per square metre, times the flavor's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for every arm (model widths, grid, ...)")
    parser.add_argument("--summary-only", action="store_true",
                        help="train nothing: recompute the tables and curves from the runs' log.jsonl under OUT "
                             "(e.g. the logs committed in bench/results/ppt-mechanisms)")
    args = parser.parse_args(argv)
    for scenario in args.scenario:
        folder = args.out / scenario
        if not args.summary_only:
            train_arms(folder, scenario, args)
        table = summarize(folder, scenario, arms_of(scenario, args.arms), args.seeds)
        (folder / "results.json").write_text(json.dumps({"scenario": scenario, "seeds": args.seeds,
                                                         "steps": args.steps, "overrides": args.set,
                                                         "table": table}, indent=1) + "\n")
        (folder / "results.md").write_text(markdown(table) + per_class_markdown(folder, arms_of(scenario, args.arms),
                                                                                args.seeds))
        plot(table, scenario, folder / "curves.png")
        plot_bars(table, scenario, folder / "bars.png")
        print(markdown(table), end="")
        print(f"wrote {folder / 'results.json'}, {folder / 'results.md'}, {folder / 'curves.png'}, "
              f"{folder / 'bars.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
