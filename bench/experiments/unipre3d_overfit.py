"""Issue 22's UniPre3D sanity gate: can the object-level model overfit a handful of objects?

For each ``--setting`` (a name and recipe overrides of ``unipre3d-object``, e.g. the Gaussian head's
``unipre3d.min_log_scale`` or ``model.num_groups``) the model trains on the same ``--objects``
synthetic render objects (one per class, the first classes) for ``--steps`` steps with the recipe's
loss and optimizer settings, each step drawing fresh views of them (no other augmentation), and is
scored every ``--eval-every`` steps by the PSNR of every stored view of those objects.

The floor next to it is the *mean-colour silhouette*: each view rendered exactly as the object's
silhouette filled with the view's mean object colour on the true background. A model whose
Gaussians only cover the object with its mean colour (wide blobs) cannot beat it; past it, the
renders carry the objects' colour layout.

Writes ``OUT/overfit.json`` (settings, floors, PSNR per evaluation), ``OUT/overfit.png`` (PSNR
curves and the floor) and ``OUT/renders-<setting>.png`` (targets and final renders of one view per
object). Each setting's result (with its own ``--steps``) is kept, so a rerun continues with the missing
ones and settings of different lengths share one file; a setting cut short continues from its last
evaluation (``OUT/state-<setting>.pt``: weights, optimizer, schedule, random state, curve).

Tiny check::

    python bench/experiments/unipre3d_overfit.py --out runs/unipre3d-overfit-tiny --steps 2 --eval-every 1 \
        --setting official: --set model.depth=1 --set model.dim=32 --set model.heads=2 --set unipre3d.image_size=32

The run of docs/unipre3d.md: ``bench/results/unipre3d-overfit/run.sh``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ppt.data import ShapeNetRenders
from ppt.engine.config import load_recipe
from ppt.engine.optim import WarmupCosine
from ppt.engine.tasks import create_task
from ppt.engine.tasks.unipre3d import psnr

RECIPE = "unipre3d-object"


def parse_setting(text: str) -> tuple[str, list[str]]:
    """``name:key=value,key=value`` -> (name, overrides)."""
    name, _, rest = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"--setting must be NAME:KEY=VALUE,..., got {text!r}")
    return name, [item for item in rest.split(",") if item]


def silhouette_floor(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """PSNR of each view ``(..., H, W, 3)`` rendered as its silhouette in its mean object colour."""
    foreground = ~torch.isclose(images, background.expand_as(images), atol=1e-6).all(dim=-1, keepdim=True)
    count = foreground.sum(dim=(-3, -2), keepdim=True).clamp(min=1)
    mean = (images * foreground).sum(dim=(-3, -2), keepdim=True) / count
    return psnr(torch.where(foreground, mean, background.expand_as(images)), images)


def one_per_class(dataset, count: int) -> list[int]:
    """Indices of the first object of each of the first ``count`` synsets."""
    firsts = {}
    for index, name in enumerate(dataset.objects):
        firsts.setdefault(name.split("/")[0], index)
    if len(firsts) < count:
        raise ValueError(f"--objects {count}: the renders hold {len(firsts)} classes")
    return list(firsts.values())[:count]


def run_setting(name: str, overrides: list[str], args: argparse.Namespace) -> dict:
    config = load_recipe(RECIPE, [*args.set, *overrides, "data.augment=false"])
    task = create_task(config)
    source = next(iter(config.data.sources.values()))
    dataset = task.dataset(source, source.train_split, train=True)
    picks = one_per_class(dataset, args.objects)
    # the training items' transform (data.augment=false: only unipre3d.object_frame's, if any)
    every_view = ShapeNetRenders(dataset.root, dataset.split, views=None, num_points=dataset.num_points,
                                 seed=dataset.seed, image_size=dataset.image_size, transform=dataset.transform)
    torch.manual_seed(config.train.seed)
    model = task.build_model().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr, eps=config.optim.eps,
                                  betas=tuple(config.optim.betas), weight_decay=config.optim.weight_decay)
    # constant, or cosine from the recipe's lr to 0 over the setting's steps (--cosine)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(args.steps, 0, 0.0) if args.cosine else WarmupCosine(args.steps, 0, 1.0))
    background = torch.tensor(task.level.background)
    evaluation = task.collate([every_view[i] for i in picks])
    floor = float(silhouette_floor(evaluation.images, background).mean())
    curve, elapsed, first_step = [], 0.0, 1
    state_path = args.out / f"state-{name}.pt"
    identity = {"overrides": overrides, "steps": args.steps, "cosine": args.cosine, "common": args.set}
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        if state["identity"] == identity:  # the same setting, cut short: continue it
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["rng"])
            curve, elapsed, first_step = state["curve"], state["elapsed_s"], state["step"] + 1
            print(f"{name}: continuing from step {state['step']} ({state_path})", flush=True)
    started = time.perf_counter() - elapsed

    def evaluate(step: int) -> None:
        model.eval()
        with torch.no_grad():
            renders = task.level.render(model, evaluation)[0]
        model.train()
        curve.append({"step": step, "psnr": float(psnr(renders, evaluation.images).mean()),
                      "time_s": round(time.perf_counter() - started, 1)})
        print(f"{name} step {step}: PSNR {curve[-1]['psnr']:.2f} dB (floor {floor:.2f})", flush=True)
        torch.save({"identity": identity, "step": step, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                    "rng": torch.get_rng_state(), "curve": curve, "elapsed_s": time.perf_counter() - started},
                   state_path)

    if first_step == 1:
        evaluate(0)
    for step in range(first_step, args.steps + 1):
        dataset.set_epoch(step)
        loss = task.loss(model, task.collate([dataset[i] for i in picks]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip or float("inf"))
        optimizer.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            evaluate(step)
    model.eval()
    with torch.no_grad():
        renders = task.level.render(model, evaluation)[0]
    state_path.unlink()
    return {"overrides": overrides, "steps": args.steps, "cosine": args.cosine, "objects": picks, "floor_psnr": floor,
            "curve": curve,
            "final_renders": renders[:, 0].clamp(0, 1).numpy().tolist(),
            "targets": evaluation.images[:, 0].numpy().tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--setting", type=parse_setting, action="append", required=True,
                        help="NAME:KEY=VALUE,... recipe overrides of one setting (repeatable)")
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--cosine", action="store_true",
                        help="decay the learning rate from the recipe's to 0 over --steps (cosine); default constant")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for every setting")
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "overfit.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"recipe": RECIPE, "settings": {}}
    results.update(common_overrides=args.set, objects=args.objects)
    for name, overrides in args.setting:
        if name in results["settings"] and results["settings"][name]["overrides"] == overrides \
                and results["settings"][name]["steps"] == args.steps \
                and results["settings"][name].get("cosine", False) == args.cosine:
            continue
        result = run_setting(name, overrides, args)
        renders, targets = np.asarray(result.pop("final_renders")), np.asarray(result.pop("targets"))
        figure, axes = plt.subplots(2, len(renders), figsize=(2 * len(renders), 4), squeeze=False)
        for column in range(len(renders)):
            for row, (image, label) in enumerate([(targets[column], "target"), (renders[column], "render")]):
                axes[row, column].imshow(image)
                axes[row, column].set_title(f"{label} {column}", fontsize=7)
                axes[row, column].set_axis_off()
        figure.suptitle(f"{name}: final PSNR {result['curve'][-1]['psnr']:.2f} dB", fontsize=8)
        figure.tight_layout()
        figure.savefig(args.out / f"renders-{name}.png", dpi=100)
        plt.close(figure)
        results["settings"][name] = result
        results_path.write_text(json.dumps(results, indent=1) + "\n")

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, result in results["settings"].items():
        line, = axis.plot([p["step"] for p in result["curve"]], [p["psnr"] for p in result["curve"]], "o-", ms=3,
                          label=name)
        axis.axhline(result["floor_psnr"], color=line.get_color(), linestyle=":", linewidth=1)
    axis.axhline(25.0, color="0.3", linestyle="--", linewidth=1, label="25 dB")
    axis.set(xlabel="step", ylabel=f"PSNR of every view of the {args.objects} objects (dB)",
             title="UniPre3D overfitting (dotted: mean-colour silhouette)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out / "overfit.png", dpi=120)
    print(f"wrote {results_path}, {args.out / 'overfit.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
