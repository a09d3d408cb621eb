"""UniPre3D object-level experiment (issue 13 item 6; docs/unipre3d.md "Experiment").

1. Pre-train the Point-MAE transformer with ``unipre3d-object`` on synthetic renders.
2. ``export_backbone`` its weights (the weight average).
3. Fine-tune ``pointmae-finetune-scanobjectnn`` (full fine-tuning) on the synthetic ScanObjectNN
   objects, once from the pre-trained backbone and once from scratch, with the same budget, for each
   seed.
4. Write OUT/results.json, OUT/results.md (per-seed table and mean +- std) and OUT/render_grid.png
   (the last preview of the pre-training).

Presets size the run: ``smoke`` proves the pipeline in minutes; ``cpu`` is the budget the docs'
table comes from. Every phase goes through ``ppt.engine.train``, so each run folder holds the usual
log.jsonl / checkpoints; an interrupted experiment is restarted with the same command and skips the
runs that finished.

    python bench/unipre3d_object_experiment.py --preset smoke --seeds 1 --out runs/unipre3d-experiment-smoke
    python bench/unipre3d_object_experiment.py --preset cpu --seeds 3 --out runs/unipre3d-experiment
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import torch

from ppt.engine import load_recipe, train
from ppt.engine.tasks.unipre3d import export_backbone

# The backbone both arms share; pre-training and fine-tuning must agree on it.
PRESETS = {
    "smoke": {
        "backbone": ["model.depth=2", "model.dim=48", "model.heads=3", "model.num_groups=16", "model.group_size=16"],
        "pretrain": ["data.synthetic.renders_per_class=2", "data.synthetic.render_views=8",
                     "data.synthetic.render_gaussians=2048", "data.synthetic.object_points=512",
                     "data.num_points=256", "data.batch_size=4", "data.val_batch_size=8", "unipre3d.image_size=32",
                     "unipre3d.views=2", "unipre3d.head_hidden=32", "train.steps=4", "schedule.step_size=2",
                     "train.ema_start=1", "train.eval_every=0", "train.checkpoint_every=0", "train.preview_every=0"],
        "finetune": ["data.synthetic.train_per_class=4", "data.synthetic.test_per_class=2",
                     "data.synthetic.object_points=512", "data.num_points=256", "data.batch_size=8",
                     "data.val_batch_size=32", "train.steps=4", "train.eval_every=0", "train.checkpoint_every=0"],
    },
    "cpu": {
        "backbone": ["model.depth=4", "model.dim=128", "model.heads=4", "model.num_groups=32", "model.group_size=32"],
        "pretrain": ["data.synthetic.renders_per_class=8", "data.num_points=512", "data.batch_size=8",
                     "data.val_batch_size=8", "unipre3d.image_size=64", "unipre3d.views=4", "train.steps=800",
                     "schedule.step_size=200", "train.eval_every=400", "train.checkpoint_every=400",
                     "train.preview_every=400"],
        "finetune": ["data.num_points=512", "data.batch_size=32", "data.val_batch_size=64", "train.steps=200",
                     "train.eval_every=0", "train.checkpoint_every=0"],
    },
}


def _run(recipe: str, overrides: list[str], out: Path) -> dict:
    """Train ``recipe`` into ``out`` (or read the finished run there): the last evaluation and seconds."""
    summary = out / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    if out.exists():
        shutil.rmtree(out)  # an interrupted run restarts from scratch
    started = time.perf_counter()
    result = train(load_recipe(recipe, overrides), out, recipe=recipe, progress=False)
    record = {"metrics": result.metrics, "seconds": round(time.perf_counter() - started, 1), "steps": result.step,
              "overrides": overrides}
    summary.write_text(json.dumps(record, indent=2))
    return record


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="smoke")
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per arm")
    parser.add_argument("--out", type=Path, default=Path("runs/unipre3d-experiment"))
    parser.add_argument("--cache-dir", help="synthetic data cache (default: ppt's)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    common = [f"data.cache_dir={args.cache_dir}"] if args.cache_dir else []
    common += ["train.tensorboard=false", *preset["backbone"]]
    started = time.perf_counter()

    pretrain = _run("unipre3d-object", [*common, *preset["pretrain"]], args.out / "pretrain")
    backbone = args.out / "backbone.safetensors"
    export_backbone(args.out / "pretrain" / "last.safetensors", backbone)
    previews = sorted((args.out / "pretrain" / "previews").glob("step_*.png"))
    if previews:
        shutil.copyfile(previews[-1], args.out / "render_grid.png")

    rows = []
    for seed in range(args.seeds):
        for arm, extra in (("pre-trained", [f"model.weights={backbone}"]), ("scratch", [])):
            run = _run("pointmae-finetune-scanobjectnn", [*common, *preset["finetune"], f"train.seed={seed}", *extra],
                       args.out / f"finetune-{arm}-seed{seed}")
            metrics = run["metrics"]["scanobjectnn"]
            rows.append({"arm": arm, "seed": seed, "allAcc": 100 * metrics["allAcc"], "mAcc": 100 * metrics["mAcc"],
                         "seconds": run["seconds"]})

    results = {"preset": args.preset, "seeds": args.seeds, "torch_threads": torch.get_num_threads(),
               "pretrain": {"steps": pretrain["steps"], "seconds": pretrain["seconds"],
                            "val": pretrain["metrics"].get("shapenet", {})},
               "finetune": rows, "wall_seconds": round(time.perf_counter() - started, 1),
               "overrides": {"common": common, **{k: v for k, v in preset.items() if k != "backbone"}}}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))

    val = results["pretrain"]["val"]
    lines = [f"Pre-training: {pretrain['steps']} steps in {pretrain['seconds']:.0f} s; val PSNR "
             f"{val.get('PSNR', float('nan')):.2f} dB, loss {val.get('loss', float('nan')):.4f}.", "",
             "| arm | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " | mean ± std (allAcc %) | mAcc % |",
             "|---|" + "---|" * (args.seeds + 2)]
    for arm in ("pre-trained", "scratch"):
        mine = [row for row in rows if row["arm"] == arm]
        lines.append(f"| {arm} | " + " | ".join(f"{row['allAcc']:.2f}" for row in mine) +
                     f" | {_mean_std([row['allAcc'] for row in mine])} | {_mean_std([row['mAcc'] for row in mine])} |")
    lines += ["", f"Wall time {results['wall_seconds']:.0f} s ({torch.get_num_threads()} torch threads)."]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
