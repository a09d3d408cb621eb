"""Issue 22 item 5: does UniPre3D pre-training transfer to classification?

Pre-trains ``unipre3d-object`` on the synthetic renders once per 2D-branch arm, then judges the
backbone against a randomly initialised one (``scratch``) on synthetic objects of the same 15 classes:

- **Pre-training** (``ppt train unipre3d-object`` per arm): ``--pretrain-set`` is the setting (the
  overfitting gate's: Gaussian scale floor, learning rate, ...); the clouds are put in the frame of
  the classification objects (``unipre3d.object_frame=unit-y-up``: unit sphere, y up, the cameras
  following them), so pre-training and fine-tuning share one scale and one axis convention. Arms:
  ``none`` (no 2D branch), ``conv`` (the official structure with ppt's fixed random filters) and
  ``sd-vae:<folder>`` (the official Stable Diffusion VAE, where its weights exist locally).
- **Novel-view PSNR**: every view but the reference (view 0, the 2D branch's input) of every val
  object, against the *mean-colour silhouette* floor (each view drawn as its exact silhouette in its
  mean object colour; blobs of the mean colour cannot beat it). A render grid of the first objects.
- **Linear probe**: the frozen backbone's group tokens, mean- and max-pooled, then an L2-regularised
  logistic regression (``pointmae_sanity.linear_probe``), fitted on the whole pool of training
  objects and on each seed's 5- and 10-shot subset, scored on the test objects.
- **Few-shot fine-tuning** (``ppt train pointmae-finetune-scanobjectnn`` per arm, shot count and seed):
  the seed picks the shots (nested: the 5 shots are the first 5 of the 10) and the head's
  initialisation and data order; scratch's seed also draws its backbone. Test accuracy at the end.
- **Paired tests** over seeds (paired t-test, scipy's ``ttest_rel``): each pre-trained arm against
  scratch, and ``conv`` against ``none``, per shot count, for the probe and the fine-tuning.

``--extra-backbone NAME=PATH`` adds a backbone pre-trained elsewhere (e.g. ``ppt train pointmae-pretrain``
of the same transformer, a positive control that the probe and fine-tuning can see a pre-training
effect at all) as one more arm of the probe and the fine-tuning.

The classification objects are a fresh synthetic OBJ_ONLY pool (``ppt.data.write_synthetic_objects``,
``--pool-per-class`` training and ``--test-per-class`` test objects per class, seed 1000): the
generator of the render objects (there without sensor noise), other instances.

Writes into ``OUT``: ``pretrain-<arm>/`` and ``finetune/<arm>-<K>shot-seed<S>/`` (``ppt train`` runs,
each with ``console.txt``), ``data/`` (the pool and the shot subsets), ``transfer.json`` (settings,
novel-view PSNR per object, probe accuracies), ``novel-views/<arm>.png`` and ``truth.png`` (tiles of
the render grid: rows objects, columns views), and from those the summary: ``results.json``,
``results.md`` (tables: per seed, mean ± population std over seeds, paired tests),
``render-grid.png`` and ``transfer.png``. A rerun skips what is finished and continues a cut run
with ``ppt train --resume`` from its last checkpoint; ``--summary`` only recomputes the summary
from the logs in ``OUT`` (e.g. the committed ones, see ``--logs-to``).

Tiny check (a few steps of a tiny model on tiny renders)::

    python bench/experiments/unipre3d_transfer.py --out runs/unipre3d-transfer-tiny --pretrain-steps 2 \\
        --finetune-steps 2 --seeds 0 1 --shots 1 2 --pool-per-class 2 --test-per-class 1 --novel-objects 2 \\
        --renders-per-class 1 --set model.depth=1 --set model.dim=32 --set model.heads=2 --set model.num_groups=8 \\
        --set model.group_size=8 --set data.num_points=64 --pretrain-set unipre3d.image_size=32 \\
        --pretrain-set data.synthetic.render_views=4 --pretrain-set data.synthetic.render_gaussians=512 \\
        --pretrain-set data.synthetic.object_points=128 --pretrain-set data.batch_size=2

The run of docs/unipre3d.md: ``bench/results/unipre3d-transfer/run.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PRETRAIN_RECIPE = "unipre3d-object"
FINETUNE_RECIPE = "pointmae-finetune-scanobjectnn"
GATE_SETTING = ["unipre3d.min_log_scale=-5"]
"""The overfitting gate's setting (docs/unipre3d.md, "Sanity gate"), the default of ``--pretrain-set``."""
POOL_SEED = 1000
GRID_OBJECTS, GRID_VIEWS = 4, 4
"""The render grid: the first val objects, the reference view and novel views spread around each."""


@dataclass(frozen=True)
class Job:
    name: str
    command: list[str]
    folder: Path


def arm_name(arm: str) -> str:
    """The folder name of a pre-training arm (``sd-vae:<folder>`` -> ``sd-vae``)."""
    return arm.split(":", 1)[0]


def check_arm(arm: str) -> str:
    if arm in ("none", "conv"):
        return arm
    if arm == "sd-vae" or arm.startswith("sd-vae:"):
        folder = arm.partition(":")[2] or os.environ.get("PPT_SD_VAE", "")
        if not folder or not (Path(folder).expanduser() / "config.json").is_file():
            raise argparse.ArgumentTypeError(
                f"--arms {arm}: no VAE weights (a folder with config.json, as sd-vae:<folder> or $PPT_SD_VAE); the "
                "sd-vae arm runs only where stabilityai/sd-vae-ft-mse exists locally")
        return arm
    raise argparse.ArgumentTypeError(f"--arms: 'none', 'conv' or 'sd-vae[:<folder>]', got {arm!r}")


# ---------------------------------------------------------------------------------------------
# Runs of `ppt train`


def evaluations(run: Path) -> list[dict]:
    log = run / "log.jsonl"
    if not log.is_file():
        return []
    return [record for record in map(json.loads, log.read_text().splitlines()) if "eval" in record]


def finished(run: Path, steps: int) -> bool:
    return any(record["step"] == steps for record in evaluations(run))


def train_job(name: str, recipe: str, run: Path, steps: int, overrides: list[str]) -> Job | None:
    """The ``ppt train`` command of a run, resuming a cut one; ``None`` when it is finished."""
    if finished(run, steps):
        return None
    command = [sys.executable, "-m", "ppt", "train", recipe, "--out", str(run), "--no-progress"]
    if (run / "last.safetensors").is_file():
        command.append("--resume")
    for item in overrides:
        command += ["--set", item]
    return Job(name, command, run)


def run_jobs(jobs: list[Job | None], workers: int, threads: int) -> None:
    """Run the jobs, ``workers`` at a time, each with ``threads`` OpenMP threads; stdout and stderr go
    to ``<run>/console.txt``. Raises after all have ended if any failed."""
    jobs = [job for job in jobs if job is not None]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}

    def run(job: Job) -> str | None:
        job.folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        print(f"start {job.name}: {' '.join(job.command)}", flush=True)
        with open(job.folder / "console.txt", "a") as console:
            code = subprocess.run(job.command, stdout=console, stderr=subprocess.STDOUT, env=env).returncode
        print(f"{'done' if code == 0 else 'FAILED'} {job.name} ({time.perf_counter() - started:.0f} s)", flush=True)
        return None if code == 0 else f"{job.name} (exit {code}; see {job.folder / 'console.txt'})"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        failures = [failure for failure in pool.map(run, jobs) if failure]
    if failures:
        raise RuntimeError("failed: " + "; ".join(failures))


def pretrain_overrides(args: argparse.Namespace, arm: str) -> list[str]:
    every = max(1, args.pretrain_steps // 4)
    return [*args.set, f"unipre3d.image_encoder={arm}", f"unipre3d.object_frame={args.object_frame}",
            f"data.synthetic.renders_per_class={args.renders_per_class}", f"train.steps={args.pretrain_steps}",
            f"train.eval_every={every}", f"train.checkpoint_every={min(every, 250)}", "train.preview_every=0",
            f"schedule.step_size={max(1, args.pretrain_steps // 5)}",  # the recipe's decay at the same fractions
            *args.pretrain_set]


def finetune_overrides(args: argparse.Namespace, root: Path, seed: int, backbone: Path | None) -> list[str]:
    return [*args.set, f"data.root={root}", "data.sources.scanobjectnn.variant=OBJ_ONLY",
            f"data.num_points={args.num_points}", f"data.batch_size={args.finetune_batch_size}",
            f"train.seed={seed}", f"train.steps={args.finetune_steps}",
            f"train.eval_every={args.finetune_steps}", f"train.checkpoint_every={min(args.finetune_steps, 50)}",
            *([f"model.weights={backbone}"] if backbone else []), *args.finetune_set]


# ---------------------------------------------------------------------------------------------
# Classification objects


def pool_files(out: Path) -> tuple[Path, Path]:
    from ppt.data import scanobjectnn_file

    root = out / "data" / "pool"
    return root / scanobjectnn_file("OBJ_ONLY", "train"), root / scanobjectnn_file("OBJ_ONLY", "test")


def write_pool(out: Path, per_class: int, test_per_class: int) -> None:
    from ppt.data import write_synthetic_objects

    train_file, test_file = pool_files(out)
    if not (train_file.is_file() and test_file.is_file()):
        write_synthetic_objects(out / "data" / "pool", "clean", seed=POOL_SEED, train_per_class=per_class,
                                test_per_class=test_per_class)


def read_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as file:
        return {key: np.asarray(file[key]) for key in ("data", "label", "mask")}


def shot_indices(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """``shots`` indices per class, drawn by ``seed``; the draws of one seed are nested (the first
    ``k`` of ``n > k`` shots are the ``k`` shots)."""
    rng = np.random.default_rng([seed, 22])
    picks = []
    for label in range(int(labels.max()) + 1):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < shots:
            raise ValueError(f"{shots} shots: class {label} has {len(members)} pool objects (raise --pool-per-class)")
        picks.append(members[:shots])
    return np.sort(np.concatenate(picks))


def write_shots(out: Path, shots: int, seed: int) -> Path:
    """A ScanObjectNN folder with the ``shots``-per-class subset of the pool and the pool's test file."""
    from ppt.data.objects.scanobjectnn import write_scanobjectnn_h5

    train_file, test_file = pool_files(out)
    root = out / "data" / "shots" / f"{shots}shot-seed{seed}"
    subset, test = root / train_file.relative_to(out / "data" / "pool"), root / test_file.relative_to(out / "data" / "pool")
    if not subset.is_file():
        pool = read_h5(train_file)
        index = shot_indices(pool["label"], shots, seed)
        write_scanobjectnn_h5(subset, pool["data"][index], pool["label"][index], pool["mask"][index])
    if not test.is_file():
        test.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(test_file, test)
    return root


# ---------------------------------------------------------------------------------------------
# Evaluations with the weights (novel views, probe)


@torch.no_grad()
def novel_views(run: Path, objects: int | None, tiles: Path, arm: str) -> dict:
    """PSNR of every novel view of the val objects and the silhouette floor of those views; writes the
    render tiles of the grid to ``tiles/<arm>.png`` (and the ground truth to ``tiles/truth.png``)."""
    from safetensors.torch import load_file

    from ppt.data import ShapeNetRenders
    from ppt.engine.checkpoint import read_meta
    from ppt.engine.config import config_from_dict
    from ppt.engine.tasks import create_task
    from ppt.engine.tasks.unipre3d import psnr
    from unipre3d_overfit import silhouette_floor

    last = run / "last.safetensors"
    config = config_from_dict(read_meta(last).config, str(last))
    task = create_task(config)
    source = next(iter(config.data.sources.values()))
    val = task.dataset(source, source.val_split, train=False)
    every_view = ShapeNetRenders(val.root, val.split, views=None, num_points=val.num_points, seed=val.seed,
                                 image_size=val.image_size, transform=val.transform)
    model = task.build_model()
    model.load_state_dict(load_file(str(last)))  # the weight average when the run kept one
    model.eval()
    background = torch.tensor(task.level.background)
    count = len(every_view) if objects is None else min(objects, len(every_view))
    rows, truths, result = [], [], {"objects": [], "psnr": [], "floor": []}
    for index in range(count):
        batch = task.collate([every_view[index]])
        renders, targets = task.level.render(model, batch)
        result["objects"].append(every_view.objects[index])
        result["psnr"].append(float(psnr(renders, targets)[0, 1:].mean()))
        result["floor"].append(float(silhouette_floor(targets, background)[0, 1:].mean()))
        if index < GRID_OBJECTS:
            views = result.setdefault("grid_views", sorted({v * renders.shape[1] // GRID_VIEWS for v in range(GRID_VIEWS)}))
            rows.append(torch.cat(list(renders[0, views].clamp(0, 1)), dim=1))
            truths.append(torch.cat(list(targets[0, views]), dim=1))
    result["views"] = int(renders.shape[1])
    tiles.mkdir(parents=True, exist_ok=True)
    for name, images in ((arm, rows), ("truth", truths)):
        save_png(torch.cat(images, dim=0), tiles / f"{name}.png")
    return result


def save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    Image.fromarray((image.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()).save(path)


OPTIONAL_KEYS = {"cls_token", "cls_pos"}
"""Backbone keys a checkpoint may lack (a Point-MAE pre-training encoder has no cls token)."""


def build_backbone(args: argparse.Namespace, backbone: Path | None, seed: int):
    from ppt.engine.config import load_recipe
    from ppt.models import PointMAE, load_weights

    model_config = load_recipe(FINETUNE_RECIPE, args.set).model
    torch.manual_seed(seed)
    model = PointMAE(num_classes=0, num_groups=model_config.num_groups, group_size=model_config.group_size,
                     depth=model_config.depth, dim=model_config.dim, heads=model_config.heads)
    if backbone is not None:
        report = load_weights(model, backbone)
        if set(report.missing) - OPTIONAL_KEYS or report.unexpected:
            raise RuntimeError(f"{backbone} does not load into the probe's backbone: {report}")
    return model.eval()


@torch.no_grad()
def probe_features(model, clouds: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """The frozen backbone's group tokens (after its final norm), mean- and max-pooled."""
    features = []
    for start in range(0, len(clouds), batch):
        tokens = model.forward_features(clouds[start:start + batch])[:, 1:]
        features.append(torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=-1))
    return torch.cat(features)


def probe_clouds(path: Path, num_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The clouds of a pool file as the fine-tuning evaluation reads them (farthest point subsampled)."""
    from ppt.ops import farthest_point_sample

    content = read_h5(path)
    points = torch.from_numpy(content["data"].astype(np.float32))
    index = farthest_point_sample(points, num_points)
    return torch.gather(points, 1, index[..., None].expand(-1, -1, 3)), torch.from_numpy(content["label"])


def probe(args: argparse.Namespace, arm: str, backbone: Path | None) -> dict:
    """Linear-probe accuracy (%) on the whole pool and on each seed's shot subsets."""
    from pointmae_sanity import linear_probe

    train_file, test_file = pool_files(args.out)
    (train_x, train_y), (test_x, test_y) = (probe_clouds(path, args.num_points) for path in (train_file, test_file))
    result = {"pool": {}, "shots": {str(k): {} for k in args.shots}}
    cached = None
    for seed in args.seeds:
        if cached is None or backbone is None:  # scratch: each seed draws its backbone
            model = build_backbone(args, backbone, seed)
            cached = probe_features(model, train_x), probe_features(model, test_x)
        train_features, test_features = cached
        result["pool"][str(seed)] = 100 * linear_probe(train_features, train_y, test_features, test_y)
        for shots in args.shots:
            index = torch.from_numpy(shot_indices(train_y.numpy(), shots, seed))
            result["shots"][str(shots)][str(seed)] = 100 * linear_probe(train_features[index], train_y[index],
                                                                        test_features, test_y)
        print(f"probe {arm} seed {seed}: pool {result['pool'][str(seed)]:.2f} %, "
              + ", ".join(f"{k}-shot {result['shots'][str(k)][str(seed)]:.2f} %" for k in args.shots), flush=True)
    return result


# ---------------------------------------------------------------------------------------------
# Summary (from the logs only)


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.pstdev(values), "n": len(values)}


def cell(stats: dict, digits: int = 2) -> str:
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} (n={stats['n']})"


def paired_test(a: list[float], b: list[float]) -> dict:
    """Paired t-test of ``a - b`` over seeds (``scipy.stats.ttest_rel``, two-sided)."""
    from scipy.stats import ttest_rel

    differences = [x - y for x, y in zip(a, b)]
    result = {**mean_std(differences), "df": len(differences) - 1}
    if len(differences) > 1 and statistics.pstdev(differences) > 1e-6:  # rounding: constant differences
        test = ttest_rel(a, b)
        result.update(t=float(test.statistic), p=float(test.pvalue))
    else:
        result.update(t=None, p=None)
    return result


def finetune_accuracy(run: Path, steps: int) -> float | None:
    for record in evaluations(run):
        if record["step"] == steps:
            return 100 * next(iter(record["eval"].values()))["allAcc"]
    return None


def summarize(out: Path) -> dict:
    state = json.loads((out / "transfer.json").read_text())
    settings = state["settings"]
    arms = ["scratch", *settings["arms"], *settings.get("extra_backbones", {})]
    seeds, shots = settings["seeds"], settings["shots"]
    summary = {"settings": settings, "pretrain": {}, "probe": {}, "finetune": {}, "tests": {}}
    for arm in settings["arms"]:
        records = evaluations(out / f"pretrain-{arm}")
        novel = state.get("novel_views", {}).get(arm)
        entry = {"curve": [{"step": r["step"], **{k: v for k, v in next(iter(r["eval"].values())).items()
                                                  if k in ("PSNR", "PSNR/novel", "loss")}} for r in records]}
        if novel:
            entry.update(psnr=mean_std(novel["psnr"]), floor=mean_std(novel["floor"]),
                         above_floor=mean_std([p - f for p, f in zip(novel["psnr"], novel["floor"])]),
                         views=novel["views"], objects=len(novel["psnr"]))
        summary["pretrain"][arm] = entry
    for arm in arms:
        probe_result = state.get("probe", {}).get(arm)
        if probe_result:
            summary["probe"][arm] = {"pool": {seed: probe_result["pool"][str(seed)] for seed in seeds
                                              if str(seed) in probe_result["pool"]}}
            for k in shots:
                summary["probe"][arm][f"{k}-shot"] = {seed: probe_result["shots"][str(k)][str(seed)] for seed in seeds
                                                      if str(seed) in probe_result["shots"].get(str(k), {})}
        summary["finetune"][arm] = {}
        for k in shots:
            values = {seed: finetune_accuracy(out / "finetune" / f"{arm}-{k}shot-seed{seed}", settings["finetune_steps"])
                      for seed in seeds}
            summary["finetune"][arm][f"{k}-shot"] = {seed: v for seed, v in values.items() if v is not None}
    pairs = [(arm, "scratch") for arm in arms[1:]]
    if {"none", "conv"} <= set(settings["arms"]):
        pairs.append(("conv", "none"))
    for measure in ("probe", "finetune"):
        for k in shots:
            for a, b in pairs:
                x, y = (summary[measure].get(arm, {}).get(f"{k}-shot", {}) for arm in (a, b))
                common = [seed for seed in seeds if seed in x and seed in y]
                if common:
                    summary["tests"][f"{measure} {k}-shot: {a} - {b}"] = paired_test([x[s] for s in common],
                                                                                     [y[s] for s in common])
    return summary


def markdown(summary: dict) -> str:
    settings = summary["settings"]
    seeds = settings["seeds"]
    lines = [f"Pre-training setting: `{' '.join(settings['pretrain_set'])}`; common: `{' '.join(settings['set'])}`; "
             f"object frame `{settings['object_frame']}`; {settings['pretrain_steps']} pre-training steps, "
             f"{settings['finetune_steps']} fine-tuning steps.", "",
             "**Novel views** (val objects, every view but the reference; PSNR in dB, mean ± std over objects):", "",
             "| arm | objects | views | PSNR | mean-colour silhouette | PSNR - silhouette | training log: PSNR/novel |",
             "|---|---|---|---|---|---|---|"]
    for arm, entry in summary["pretrain"].items():
        last = entry["curve"][-1] if entry["curve"] else {}
        if "psnr" in entry:
            lines.append(f"| {arm} | {entry['objects']} | {entry['views'] - 1} novel | {cell(entry['psnr'])} | "
                         f"{cell(entry['floor'])} | {cell(entry['above_floor'])} | "
                         f"{last.get('PSNR/novel', float('nan')):.2f} (step {last.get('step', '-')}) |")
    for measure, title in (("probe", "Linear probe"), ("finetune", "Few-shot fine-tuning")):
        columns = [*(["pool"] if measure == "probe" else []), *(f"{k}-shot" for k in settings["shots"])]
        lines += ["", f"**{title}** (test accuracy %, per seed; mean ± population std over seeds):", "",
                  "| arm | shots | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
                  "|---|---|" + "---|" * (len(seeds) + 1)]
        for arm, entry in summary[measure].items():
            for column in columns:
                values = entry.get(column, {})
                if values:
                    lines.append(f"| {arm} | {column} | " + " | ".join(f"{values[s]:.2f}" if s in values else "-"
                                                                       for s in seeds)
                                 + f" | {cell(mean_std(list(values.values())))} |")
    lines += ["", "**Paired tests** over seeds (difference in points, mean ± population std; t-test on the "
                  "differences, two-sided):", "", "| comparison | difference | t | df | p |", "|---|---|---|---|---|"]
    for name, test in summary["tests"].items():
        t = "-" if test["t"] is None else f"{test['t']:.2f}"
        p = "-" if test["p"] is None else f"{test['p']:.3f}"
        lines.append(f"| {name} | {cell(test)} | {t} | {test['df']} | {p} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = summary["settings"]
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    arms = [arm for arm, entry in summary["pretrain"].items() if "psnr" in entry]
    axis = axes[0]
    for position, arm in enumerate(arms):
        entry = summary["pretrain"][arm]
        axis.bar(position, entry["psnr"]["mean"], yerr=entry["psnr"]["std"], color="tab:blue", capsize=3)
        axis.hlines(entry["floor"]["mean"], position - 0.4, position + 0.4, colors="0.2", linestyles=":")
    axis.set(xticks=range(len(arms)), xticklabels=arms, ylabel="novel-view PSNR (dB)",
             title="renders of val objects (dotted: silhouette floor)")
    for axis, measure, title in ((axes[1], "probe", "linear probe"), (axes[2], "finetune", "few-shot fine-tuning")):
        columns = [*(["pool"] if measure == "probe" else []), *(f"{k}-shot" for k in settings["shots"])]
        arms = list(summary[measure])
        width = 0.8 / max(1, len(arms))
        for index, arm in enumerate(arms):
            for position, column in enumerate(columns):
                values = list(summary[measure][arm].get(column, {}).values())
                if not values:
                    continue
                x = position + (index - (len(arms) - 1) / 2) * width
                axis.bar(x, statistics.mean(values), width, color=f"C{index}", label=arm if position == 0 else None)
                axis.plot([x] * len(values), values, "k.", ms=3)
        axis.set(xticks=range(len(columns)), xticklabels=columns, ylabel="test accuracy (%)", title=title)
        axis.axhline(100 / 15, color="0.5", linestyle=":", linewidth=1)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def render_grid(out: Path, summary: dict, path: Path) -> bool:
    """Rows: objects; per view the ground truth and each arm's render (from ``novel-views/*.png``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    tiles = out / "novel-views"
    names = ["truth", *(arm for arm in summary["pretrain"] if (tiles / f"{arm}.png").is_file())]
    if len(names) < 2 or not (tiles / "truth.png").is_file():
        return False
    images = {name: np.asarray(Image.open(tiles / f"{name}.png")) for name in names}
    state = json.loads((out / "transfer.json").read_text())
    views = next(iter(state["novel_views"].values()))["grid_views"]
    size = images["truth"].shape[1] // len(views)
    rows = images["truth"].shape[0] // size
    figure, axes = plt.subplots(rows, len(views) * len(names), squeeze=False,
                                figsize=(1.3 * len(views) * len(names), 1.45 * rows))
    for row in range(rows):
        for v, view in enumerate(views):
            for n, name in enumerate(names):
                axis = axes[row, v * len(names) + n]
                axis.imshow(images[name][row * size:(row + 1) * size, v * size:(v + 1) * size], interpolation="nearest")
                axis.set_xticks([])
                axis.set_yticks([])
                if row == 0:
                    axis.set_title(f"view {view}{' (ref)' if view == 0 else ''}\n{name}", fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def write_summary(out: Path) -> None:
    summary = summarize(out)
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "results.md").write_text(markdown(summary))
    plot(summary, out / "transfer.png")
    drawn = render_grid(out, summary, out / "render-grid.png")
    print(markdown(summary), end="")
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'transfer.png'}"
          + (f", {out / 'render-grid.png'}" if drawn else ""))


def copy_logs(out: Path, dest: Path) -> None:
    """Copy what the summary reads (no weights, no data) from ``out`` to ``dest``."""
    patterns = ["transfer.json", "novel-views/*.png", "pretrain-*/log.jsonl", "pretrain-*/config.yaml",
                "finetune/*/log.jsonl", "finetune/*/config.yaml"]
    for pattern in patterns:
        for source in out.glob(pattern):
            target = dest / source.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", action="store_true", help="only recompute the summary from the logs in OUT")
    parser.add_argument("--logs-to", type=Path, metavar="DEST",
                        help="at the end, copy the logs (no weights or data) to DEST and write the summary there")
    parser.add_argument("--arms", type=check_arm, nargs="+", default=["none", "conv"],
                        help="pre-training arms: 2D branch none, conv or sd-vae[:<folder>] (scratch always runs)")
    parser.add_argument("--pretrain-steps", type=int, default=1500)
    parser.add_argument("--pretrain-set", action="append", metavar="KEY=VALUE",
                        help=f"pre-training override (repeatable; default: the gate's setting {GATE_SETTING})")
    parser.add_argument("--object-frame", choices=["unit-y-up", "cameras"], default="unit-y-up",
                        help="unipre3d.object_frame of the pre-training (cameras: the official, mismatched frame)")
    parser.add_argument("--renders-per-class", type=int, default=8, help="synthetic render objects per class")
    parser.add_argument("--novel-objects", type=int, help="val objects scored on novel views (default: all)")
    parser.add_argument("--finetune-steps", type=int, default=120)
    parser.add_argument("--finetune-batch-size", type=int, default=8)
    parser.add_argument("--finetune-set", action="append", default=[], metavar="KEY=VALUE",
                        help="fine-tuning override (repeatable)")
    parser.add_argument("--extra-backbone", action="append", default=[], metavar="NAME=PATH",
                        help="one more arm of the probe and the fine-tuning: backbone weights from elsewhere")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--pool-per-class", type=int, default=32, help="training objects per class in the pool")
    parser.add_argument("--test-per-class", type=int, default=16)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override of both recipes (the backbone: model.depth, dim, heads, num_groups, ...)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP / torch threads per run")
    args = parser.parse_args(argv)
    if args.summary:
        write_summary(args.out)
        return 0
    args.pretrain_set = GATE_SETTING if args.pretrain_set is None else args.pretrain_set
    if any(item.startswith("model.") for item in args.pretrain_set):
        parser.error("--pretrain-set: model.* settings shape the backbone that fine-tuning loads; give them with --set")
    extra = dict(item.split("=", 1) for item in args.extra_backbone if "=" in item)
    if len(extra) != len(args.extra_backbone) or any(not Path(path).is_file() for path in extra.values()):
        parser.error(f"--extra-backbone: NAME=PATH with an existing weights file, got {args.extra_backbone}")
    if set(extra) & {"scratch", *(arm_name(arm) for arm in args.arms)}:
        parser.error("--extra-backbone: a NAME apart from scratch and the --arms")
    if len({arm_name(arm) for arm in args.arms}) != len(args.arms):
        parser.error("--arms: one arm per 2D branch")
    if max(args.shots) > args.pool_per_class:
        parser.error(f"--shots {max(args.shots)} exceeds --pool-per-class {args.pool_per_class}")
    from ppt.engine.config import load_recipe

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # pointmae_sanity, unipre3d_overfit
    torch.set_num_threads(args.threads * max(1, args.jobs))
    args.num_points = load_recipe(PRETRAIN_RECIPE, [*args.set, *args.pretrain_set]).data.num_points
    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / "transfer.json"
    settings = {key: value for key, value in vars(args).items()
                if key not in ("out", "summary", "logs_to", "jobs", "threads", "extra_backbone")}
    settings["arms"] = [arm_name(arm) for arm in args.arms]
    settings["arm_encoders"] = args.arms
    settings["extra_backbones"] = {name: str(Path(path).resolve()) for name, path in extra.items()}
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    old = state.get("settings", settings)
    arm_keys = ("arms", "arm_encoders", "extra_backbones")
    if ({k: v for k, v in old.items() if k not in arm_keys} != {k: v for k, v in settings.items() if k not in arm_keys}
            or not set(old["arm_encoders"]) <= set(settings["arm_encoders"])
            or not old.get("extra_backbones", {}).items() <= settings["extra_backbones"].items()):
        parser.error(f"{state_path} holds another setting ({old}); choose another --out (only arms may be added)")
    state["settings"] = settings

    def save() -> None:
        state_path.write_text(json.dumps(state, indent=1) + "\n")

    # 1. pre-training, one run per arm (the synthetic renders written first: parallel runs would race)
    started = time.perf_counter()
    from ppt.engine.tasks.unipre3d import ObjectLevel

    config = load_recipe(PRETRAIN_RECIPE, pretrain_overrides(args, args.arms[0]))
    if not any(source.root for source in config.data.sources.values()):
        ObjectLevel.synthetic_root(config)
    runs = {arm_name(arm): args.out / f"pretrain-{arm_name(arm)}" for arm in args.arms}
    run_jobs([train_job(f"pre-training {arm}", PRETRAIN_RECIPE, runs[arm_name(arm)], args.pretrain_steps,
                        pretrain_overrides(args, arm)) for arm in args.arms], args.jobs, args.threads)
    backbones = {}
    for arm, run in runs.items():
        backbones[arm] = run / "backbone.safetensors"
        if not backbones[arm].is_file():
            from ppt.engine.tasks.unipre3d import export_backbone
            export_backbone(run / "last.safetensors", backbones[arm])
    print(f"pre-training: {time.perf_counter() - started:.0f} s", flush=True)
    backbones.update({name: Path(path) for name, path in settings["extra_backbones"].items()})

    # 2. novel views and the render grid
    state.setdefault("novel_views", {})
    for arm, run in runs.items():
        if arm not in state["novel_views"]:
            started = time.perf_counter()
            state["novel_views"][arm] = novel_views(run, args.novel_objects, args.out / "novel-views", arm)
            save()
            print(f"novel views {arm}: {statistics.mean(state['novel_views'][arm]['psnr']):.2f} dB "
                  f"(floor {statistics.mean(state['novel_views'][arm]['floor']):.2f}; "
                  f"{time.perf_counter() - started:.0f} s)", flush=True)

    # 3. the classification objects, the linear probe
    write_pool(args.out, args.pool_per_class, args.test_per_class)
    state.setdefault("probe", {})
    for arm in ["scratch", *backbones]:
        if arm not in state["probe"]:
            started = time.perf_counter()
            state["probe"][arm] = probe(args, arm, backbones.get(arm))
            save()
            print(f"probe {arm}: {time.perf_counter() - started:.0f} s", flush=True)

    # 4. few-shot fine-tuning: every arm, shot count and seed
    jobs = []
    for seed in args.seeds:
        for shots in args.shots:
            root = write_shots(args.out, shots, seed)
            for arm in ["scratch", *backbones]:
                run = args.out / "finetune" / f"{arm}-{shots}shot-seed{seed}"
                jobs.append(train_job(f"fine-tuning {arm} {shots}-shot seed {seed}", FINETUNE_RECIPE, run,
                                      args.finetune_steps, finetune_overrides(args, root, seed, backbones.get(arm))))
    run_jobs(jobs, args.jobs, args.threads)
    save()

    write_summary(args.out)
    if args.logs_to:
        copy_logs(args.out, args.logs_to)
        write_summary(args.logs_to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
