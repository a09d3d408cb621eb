"""Issue 22 item 4: does DAPT adapt a pre-trained Point-MAE to a shifted target as well as full
fine-tuning, at a fraction of its memory? (docs/dapt.md, "The transfer experiment").

**Design.** A Point-MAE backbone pre-trained as a masked autoencoder on the synthetic *clean*
objects (the ShapeNet-55 stand-in; the checkpoint the sanity gate scored, or one pre-trained here)
is fine-tuned on the synthetic *PB_T50_RS* objects (the same 15 classes cropped from cluttered
scenes by a shifted, turned and rescaled box: background points, partial objects, turned crops)
by nine arms, all from the recipe ``pointmae-finetune-scanobjectnn`` with ``model.peft`` switched:

=================  ========  ===================================================================
arm                backbone  trains
=================  ========  ===================================================================
``full``           MAE       everything
``linear``         MAE       the classification head only (Point-MAE's 3-layer head)
``bitfit``         MAE       head, cls token/pos, every bias
``lora``           MAE       head, cls token/pos, rank-8 updates of the qkv projections
``adaptformer``    MAE       head, cls token/pos, a bottleneck adapter per block
``vpt_deep``       MAE       head, cls token/pos, 10 prompt tokens per block
``dapt``           MAE       head, cls token/pos, Dynamic Adapters (rank 64), scale/shift, prompts
``scratch``        random    everything (control: what pre-training adds)
``random_frozen``  random    the head only (control: what the pre-trained features add)
=================  ========  ===================================================================

Every arm has the same drop path (0.1) and no adapter dropout, 600 steps of batch 32 on 512 points,
AdamW (weight decay 0.05), cosine schedule with warm-up, gradient clipping 10. 20 % of each class of
the training split is held out (``data.sources.scanobjectnn.holdout=0.2``, the same objects for
every seed) as the validation split. The learning rate of each arm is the best of ``--lrs`` on the
held-out split at ``--sweep-seed`` (ties: the smaller); the arm then trains at that rate for each
of ``--seeds`` (a run the sweep already made is reused, not retrained) and is scored on the test
split. Every run's final weights are scored on both splits (``result.json`` beside its
``log.jsonl``). Step time and peak step memory are not read from these runs: they come from
``ppt bench models --case "fine-tuning step at the transfer size"`` on an idle machine
(``--bench``).

Before any arm: a frozen-feature probe of the target (``probe.json``): an L2-regularised logistic
regression (L-BFGS) on the standardised features the head reads (cls token and max over patches), of
a random encoder and of the backbone, fitted on the training split (without the held-out part) and
scored on the test split: how hard the target is for features that know nothing, and how much the
pre-trained ones carry.

Commands::

    python bench/experiments/dapt_transfer.py run --out OUT [--backbone CKPT | --pretrain-steps N] [--jobs 2]
    python bench/experiments/dapt_transfer.py run --out OUT --plan          # the runs and the time estimate only
    python bench/experiments/dapt_transfer.py collect --out OUT --into bench/results/dapt-transfer
    python bench/experiments/dapt_transfer.py summarize --out bench/results/dapt-transfer [--figure PNG]

``run`` resumes: a run with its ``result.json`` is skipped, a cut one continues from its last
checkpoint (every 100 steps), a finished one without its scores is only scored. ``collect`` copies
the logs, configs and scores (no weights) into a folder to commit; ``summarize`` recomputes every
table and the figure from such a folder. Tiny check (2 steps, two seeds, a tiny transformer)::

    python bench/experiments/dapt_transfer.py run --out runs/dapt-transfer-tiny --pretrain-steps 2 --steps 2 \\
        --seeds 0 1 --lrs 1e-3 2e-3 --set model.depth=1 --set model.dim=24 --set model.heads=2 \\
        --set model.num_groups=8 --set model.group_size=8 --set data.num_points=64 --set data.batch_size=6 \\
        --set data.synthetic.train_per_class=5 --set data.synthetic.test_per_class=2 \\
        --set data.synthetic.object_points=128

The run of docs/dapt.md: ``bench/results/dapt-transfer/run.sh``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

RECIPE = "pointmae-finetune-scanobjectnn"
PRETRAIN_RECIPE = "pointmae-pretrain"
HEAD = "cls_head_finetune."
# arm -> (model.peft, starts from the pre-trained backbone)
ARMS: dict[str, tuple[str, bool]] = {
    "full": ("full", True), "linear": ("linear", True), "bitfit": ("bitfit", True), "lora": ("lora", True),
    "adaptformer": ("adaptformer", True), "vpt_deep": ("vpt_deep", True), "dapt": ("dapt", True),
    "scratch": ("full", False), "random_frozen": ("linear", False),
}
# The reduced transformer of the sanity gate's pre-training (docs/dapt.md "Sanity gate"), for the
# backbone and every arm; --set overrides come after these.
MODEL = ["model.depth=4", "model.dim=128", "model.heads=4", "model.num_groups=32", "model.group_size=32",
         "data.num_points=512"]
# Fine-tuning settings shared by every arm (the arm adds model.peft, model.weights, optim.lr, train.seed).
FINETUNE = ["data.sources.scanobjectnn.variant=PB_T50_RS", "data.sources.scanobjectnn.holdout=0.2",
            "data.sources.scanobjectnn.holdout_seed=0", "data.sources.scanobjectnn.val_split=holdout",
            "data.synthetic.train_per_class=80", "data.synthetic.test_per_class=40",
            "model.drop_path=0.1", "model.adapter_dropout=0.0", "train.eval_every=0", "train.checkpoint_every=100",
            "train.tensorboard=false"]
# CPU seconds (user + sys) per training step of each arm (batch 32 x 512 points, the reduced
# transformer, one thread, data loading included): the difference of `ppt train` runs of 12 and 2
# steps on the 2-core development machine (Xeon, AVX-512) while both cores were busy with other
# runs, with run.sh's GLIBC_TUNABLES (transparent huge pages for glibc's large allocations; without
# them the page faults of the activations cost full fine-tuning 2.0 s/step, linear 0.70, DAPT 0.78).
# Only for the --plan estimate.
STEP_SECONDS = {"full": 1.38, "scratch": 1.38, "bitfit": 1.33, "linear": 0.45, "random_frozen": 0.45,
                "lora": 0.57, "adaptformer": 0.62, "vpt_deep": 0.58, "dapt": 0.64}
BENCH_CASE = "fine-tuning step at the transfer size"
EXPECTED = ("linear < BitFit/VPT-deep < LoRA/AdaptFormer <= DAPT ~ full (DAPT within 2 points of full), "
            "DAPT peak step memory <= 0.65x full")


# ---------------------------------------------------------------------------------------------
# the runs


@dataclass(frozen=True)
class Job:
    arm: str
    lr: float
    seed: int

    @property
    def tag(self) -> str:
        return f"lr{self.lr:g}-seed{self.seed}"

    def folder(self, out: Path) -> Path:
        return out / "runs" / self.arm / self.tag


def ppt_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ppt", *args]


def sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def backbone_path(args: argparse.Namespace) -> Path:
    """The backbone checkpoint: ``--backbone``, or OUT/pretrain/last.safetensors pre-trained here
    (resumed when cut) to ``--pretrain-steps`` with the reduced transformer."""
    from ppt.engine.checkpoint import read_meta

    if args.backbone is not None:
        if not args.backbone.is_file():
            raise SystemExit(f"--backbone {args.backbone}: no such file (the sanity gate's run writes "
                             "runs/pointmae-sanity/pretrain/step-<N>.safetensors; or leave --backbone out to pre-train)")
        return args.backbone
    run = args.out / "pretrain"
    last = run / "last.safetensors"
    done = read_meta(last).step if last.is_file() else 0
    if done < args.pretrain_steps:
        command = ppt_command("train", PRETRAIN_RECIPE, "--out", str(run), "--no-progress", *(["--resume"] if done else []),
                              *sets([f"train.steps={args.pretrain_steps}", f"train.eval_every={args.pretrain_steps}",
                                     "train.checkpoint_every=250", "train.tensorboard=false", *MODEL, *args.set]))
        print(f"pre-training the backbone, steps {done} -> {args.pretrain_steps}: {' '.join(command)}", flush=True)
        with (args.out / "pretrain.log").open("a") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, env=job_env(args.threads))
    return last


def describe_backbone(path: Path) -> dict:
    from ppt.engine.checkpoint import read_meta

    meta = read_meta(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "sha256": digest, "step": meta.step, "recipe": meta.provenance.get("recipe"),
            "metrics": meta.metrics}


def job_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def train_overrides(job: Job, args: argparse.Namespace, backbone: Path) -> list[str]:
    peft, pretrained = ARMS[job.arm]
    return [*MODEL, *FINETUNE, f"model.peft={peft}", f"optim.lr={job.lr:g}", f"train.seed={job.seed}",
            f"train.steps={args.steps}", *([f"model.weights={backbone}"] if pretrained else []), *args.set]


def execute(job: Job, args: argparse.Namespace, backbone: Path) -> dict:
    """Train (or continue) one run and score it; returns its result.json content."""
    from ppt.engine.checkpoint import read_meta

    run = job.folder(args.out)
    result = run / "result.json"
    if result.is_file():
        return json.loads(result.read_text())
    run.mkdir(parents=True, exist_ok=True)
    last = run / "last.safetensors"
    done = read_meta(last).step if last.is_file() else 0
    started = time.perf_counter()
    with (run / "train.log").open("a") as log:
        if done < args.steps:
            command = ppt_command("train", RECIPE, "--out", str(run), "--no-progress", *(["--resume"] if done else []),
                                  *sets(train_overrides(job, args, backbone)))
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, env=job_env(args.threads))
        command = [sys.executable, __file__, "score", str(run), "--arm", job.arm, "--lr", f"{job.lr:g}",
                   "--seed", str(job.seed)]
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, env=job_env(args.threads))
    print(f"  {job.arm} {job.tag}: done in {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(result.read_text())


def score(run: Path, arm: str, lr: float, seed: int) -> dict:
    """The final weights of ``run`` on the held-out and the test split, with the parameter counts
    (head apart); written to ``run/result.json``."""
    import torch

    from ppt.engine.inference import evaluate_checkpoint, load_checkpoint

    loaded = load_checkpoint(run / "last.safetensors", device="cpu")
    (name, source), = loaded.config.data.sources.items()
    scores = {}
    for split in ("holdout", "test"):
        source.val_split = split
        confusion = evaluate_checkpoint(loaded, progress=False)[name]
        summary = confusion.summary(loaded.task.class_names[name])
        scores[split] = {key: summary[key] for key in ("allAcc", "mAcc", "count")}
    named = list(loaded.model.named_parameters())
    trainable = sum(p.numel() for _, p in named if p.requires_grad)
    head = sum(p.numel() for n, p in named if n.startswith(HEAD))
    weights = loaded.meta.config["model"]["weights"]  # load_checkpoint clears it in loaded.config
    result = {"arm": arm, "peft": loaded.config.model.peft, "weights": weights, "lr": lr, "seed": seed,
              "steps": loaded.meta.step,
              "val": scores["holdout"], "test": scores["test"],
              "parameters": {"trainable": trainable, "head": head, "trainable_without_head": trainable - head,
                             "total": sum(p.numel() for _, p in named)},
              "torch_threads": torch.get_num_threads()}
    (run / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def chosen_lr(results: list[dict]) -> float:
    """The learning rate of the best held-out accuracy (ties: the smaller)."""
    return min(results, key=lambda r: (-r["val"]["allAcc"], r["lr"]))["lr"]


def sweep_jobs(args: argparse.Namespace) -> list[Job]:
    return [Job(arm, lr, args.sweep_seed) for arm in args.arms for lr in args.lrs]


def final_seeds(args: argparse.Namespace) -> list[int]:
    """The seeds trained after the sweep (the sweep's own run at the chosen rate is reused)."""
    return [seed for seed in args.seeds if seed != args.sweep_seed]


def estimate(args: argparse.Namespace) -> str:
    """The runs and an estimate of their time from STEP_SECONDS (evaluation and start-up not counted)."""
    sweep = sweep_jobs(args)
    finals = [arm for arm in args.arms for _ in final_seeds(args)]
    total = args.steps * (sum(STEP_SECONDS[job.arm] for job in sweep) + sum(STEP_SECONDS[arm] for arm in finals))
    return (f"{len(sweep)} sweep runs ({len(args.arms)} arms x {len(args.lrs)} learning rates, seed {args.sweep_seed}) + "
            f"{len(finals)} runs of further seeds at the chosen rates, {args.steps} steps each: about "
            f"{total / 3600:.1f} h of one core, {total / 3600 / args.jobs:.1f} h on {args.jobs} parallel runs "
            "(from STEP_SECONDS; start-up, scoring and the probe add a few minutes)")


def run_all(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    print(estimate(args), flush=True)
    if args.plan:
        return 0
    backbone = backbone_path(args)
    settings = {"backbone": describe_backbone(backbone), "arms": args.arms, "lrs": args.lrs, "sweep_seed": args.sweep_seed,
                "seeds": args.seeds, "steps": args.steps, "threads": args.threads, "recipe": RECIPE,
                "overrides": [*MODEL, *FINETUNE, *args.set]}
    (args.out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    if not (args.out / "probe.json").is_file():
        print("frozen-feature probe of the target", flush=True)
        subprocess.run([sys.executable, __file__, "probe", "--out", str(args.out), "--backbone", str(backbone),
                        *sets(args.set)], check=True, env=job_env(args.threads))

    pending = sorted(sweep_jobs(args), key=lambda job: -STEP_SECONDS[job.arm])  # longest first: the two workers end together
    swept: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        running: dict[Future, Job] = {}
        while pending or running:
            while pending and len(running) < args.jobs and not failed:
                job = pending.pop(0)
                running[pool.submit(execute, job, args, backbone)] = job
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    result = future.result()
                except subprocess.CalledProcessError as error:
                    failed.append(f"{job.arm} {job.tag}: exit status {error.returncode} of {' '.join(error.cmd[1:5])} "
                                  f"(see {job.folder(args.out) / 'train.log'})")
                    print(f"FAILED {failed[-1]}", flush=True)
                    continue
                if job.seed == args.sweep_seed:
                    swept[job.arm].append(result)
                    if len(swept[job.arm]) == len(args.lrs):
                        lr = chosen_lr(swept[job.arm])
                        scores = [f"{r['lr']:g}: {100 * r['val']['allAcc']:.1f} %"
                                  for r in sorted(swept[job.arm], key=lambda r: r["lr"])]
                        print(f"{job.arm}: learning rate {lr:g} (held-out accuracy {', '.join(scores)})", flush=True)
                        pending += [Job(job.arm, lr, seed) for seed in final_seeds(args)]
                        pending.sort(key=lambda job: -STEP_SECONDS[job.arm])
    if failed:
        print("\n".join(["failed runs (rerun to continue them):", *failed]), flush=True)
        return 1
    print(summarize(args.out, args.bench, args.figure))
    return 0


# ---------------------------------------------------------------------------------------------
# the frozen-feature probe


def probe(args: argparse.Namespace) -> int:
    """Random-encoder and backbone features of the target, linear probe train -> test; OUT/probe.json."""
    import torch
    from pointmae_sanity import linear_probe  # this script's folder

    from ppt.engine.builders import build_model
    from ppt.engine.config import load_recipe
    from ppt.engine.tasks import create_task
    from ppt.models import load_weights

    config = load_recipe(RECIPE, [*MODEL, *FINETUNE, "model.peft=linear", *args.set])
    task = create_task(config)
    (name, source), = config.data.sources.items()

    def stacked(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = task.dataset(source, split, train=False)
        items = [dataset[i] for i in range(len(dataset))]
        return torch.stack([item.points for item in items]), torch.tensor([item.label for item in items])

    train_x, train_y = stacked(source.train_split)
    test_x, test_y = stacked("test")

    @torch.no_grad()
    def features(weights: Path | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(seed)
        config.model.weights = None
        model = build_model(config.model, num_classes=0, in_channels=3)
        if weights is not None:
            load_weights(model, weights, format="auto")
        model.eval()
        return tuple(torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)]) for x in (train_x, test_x))

    rows = []
    for label, weights, seed in [("random encoder, seed 0", None, 0), ("random encoder, seed 1", None, 1),
                                 ("backbone", args.backbone, 0)]:
        if weights is None and label == "backbone":
            continue
        train_f, test_f = features(weights, seed)
        accuracy = linear_probe(train_f, train_y, test_f, test_y)
        rows.append({"features": label, "accuracy": accuracy})
        print(f"  {label}: {100 * accuracy:.1f} %", flush=True)
    result = {"train_objects": len(train_y), "test_objects": len(test_y), "chance": 1 / len(task.class_names[name]),
              "probe": "L2-regularised logistic regression (weight decay 1e-3, L-BFGS) on the standardised "
                       "cls-token and max-over-patches features", "rows": rows}
    (args.out / "probe.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------
# collect and summarize


KEPT = ("log.jsonl", "config.yaml", "result.json", "train.log")


def collect(out: Path, into: Path) -> int:
    """Copy what the tables are computed from (no weights) from ``out`` to ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    copied = 0
    for name in ("settings.json", "probe.json", "pretrain.log"):
        if (out / name).is_file():
            shutil.copy2(out / name, into / name)
            copied += 1
    for name in ("config.yaml", "log.jsonl"):
        if (out / "pretrain" / name).is_file():
            (into / "pretrain").mkdir(exist_ok=True)
            shutil.copy2(out / "pretrain" / name, into / "pretrain" / name)
            copied += 1
    if (out / "bench" / "results.json").is_file():
        (into / "bench").mkdir(exist_ok=True)
        shutil.copy2(out / "bench" / "results.json", into / "bench" / "results.json")
        copied += 1
    for result in sorted(out.glob("runs/*/*/result.json")):
        target = into / result.parent.relative_to(out)
        target.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            if (result.parent / name).is_file():
                shutil.copy2(result.parent / name, target / name)
                copied += 1
    print(f"copied {copied} files from {out} to {into}")
    return 0


def _fmt(values: list[float]) -> str:
    """``mean ± std (n=K)`` in percent, std the population std over seeds."""
    values = [100 * v for v in values]
    return f"{statistics.fmean(values):.1f} ± {statistics.pstdev(values):.1f} (n={len(values)})"


def bench_figures(path: Path | None) -> dict[str, dict]:
    """Step time (ms) and peak step memory (MiB, and ratio to full fine-tuning in the same case) per
    arm from a ``ppt bench models`` results.json."""
    if path is None or not path.is_file():
        return {}
    data = json.loads(path.read_text())
    cases = {r["params"]["method"]: r for r in data["results"]
             if r["case"].startswith(BENCH_CASE) and r["status"] == "ok"}
    figures = {}
    for method, r in cases.items():
        full = r["baselines"][0]
        figures[method] = {"ms": r["ppt"]["median_ms"], "mib": (r["ppt"]["peak_bytes"] or 0) / 2**20,
                           "memory_ratio": full["memory_ratio"], "speedup": full["speedup"]}
    if cases:
        full_ms = [r["baselines"][0]["timing"]["median_ms"] for r in cases.values()]
        full_mib = [(r["baselines"][0]["timing"]["peak_bytes"] or 0) / 2**20 for r in cases.values()]
        figures["full"] = {"ms": statistics.median(full_ms), "mib": statistics.median(full_mib), "memory_ratio": 1.0,
                           "speedup": 1.0}
    figures = {arm: figures[ARMS[arm][0]] for arm in ARMS if ARMS[arm][0] in figures}
    meta = {"command": data.get("command"), "date": data.get("date"), "cpu": data.get("machine", {}).get("cpu"),
            "threads": data.get("machine", {}).get("torch_threads"), "quick": data.get("quick")}
    return {"arms": figures, "meta": meta}


def summarize(out: Path, bench: Path | None = None, figure: Path | None = None) -> str:
    """Tables (markdown) and the figure from the run folders of ``out``; also ``out/results.json``
    and ``out/results.md``."""
    settings = json.loads((out / "settings.json").read_text()) if (out / "settings.json").is_file() else {}
    results = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/*/result.json"))]
    arms = [arm for arm in ARMS if any(r["arm"] == arm for r in results)]
    sweep_seed, seeds = settings.get("sweep_seed", 0), settings.get("seeds")
    lrs = sorted({r["lr"] for r in results if r["seed"] == sweep_seed})
    bench = bench_figures(bench if bench is not None else out / "bench" / "results.json")
    rows, lines = [], []

    lines += ["Held-out accuracy (%) of the learning-rate sweep, seed "
              f"{sweep_seed} (the chosen rate in bold; ties go to the smaller rate):", "",
              "| arm | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |", "|---|" + "---:|" * len(lrs)]
    for arm in arms:
        sweep = {r["lr"]: r for r in results if r["arm"] == arm and r["seed"] == sweep_seed}
        best = chosen_lr(list(sweep.values())) if len(sweep) == len(lrs) else None
        cells = []
        for lr in lrs:
            if lr not in sweep:
                cells.append("—")
                continue
            text = f"{100 * sweep[lr]['val']['allAcc']:.1f}"
            cells.append(f"**{text}**" if lr == best else text)
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        finals = sorted((r for r in results if r["arm"] == arm and best is not None and r["lr"] == best
                         and (seeds is None or r["seed"] in seeds)), key=lambda r: r["seed"])
        if finals:
            edge = best in (lrs[0], lrs[-1]) and len(lrs) > 2
            rows.append({"arm": arm, "lr": best, "lr_at_grid_edge": edge, "seeds": [r["seed"] for r in finals],
                         "test": [r["test"]["allAcc"] for r in finals], "test_mAcc": [r["test"]["mAcc"] for r in finals],
                         "val": [r["val"]["allAcc"] for r in finals], "parameters": finals[0]["parameters"],
                         "bench": bench.get("arms", {}).get(arm)})

    full = next((row for row in rows if row["arm"] == "full"), None)
    lines += ["", "Test accuracy (%) at the chosen rate, mean ± std over seeds (population std); trainable "
              "parameters without the head + the head, of the total; step time and peak step memory from "
              "`ppt bench models` (not from these runs):", "",
              "| arm | lr | test accuracy | per seed | Δ vs full | trainable (head apart) | step (ms) | peak step memory (MiB) |",
              "|---|---|---|---|---:|---|---:|---:|"]
    for row in rows:
        p = row["parameters"]
        delta = (f"{round(100 * (statistics.fmean(row['test']) - statistics.fmean(full['test'])), 1) + 0.0:+.1f}"
                 if full is not None else "—")
        per_seed = ", ".join(f"{100 * a:.1f}" for a in row["test"])
        b = row["bench"]
        step = f"{b['ms']:.0f} ({1 / b['speedup']:.2f}x full)" if b else "—"
        memory = f"{b['mib']:.0f} ({b['memory_ratio']:.2f}x full)" if b else "—"
        lr = f"{row['lr']:g}" + (" (edge)" if row["lr_at_grid_edge"] else "")
        lines.append(f"| {row['arm']} | {lr} | {_fmt(row['test'])} | {per_seed} | {delta} | "
                     f"{p['trainable_without_head']:,} + {p['head']:,} of {p['total']:,} | {step} | {memory} |")
    if bench.get("meta"):
        m = bench["meta"]
        lines += ["", f"Bench: `{m['command']}` ({m['date']}, {m['cpu']}, {m['threads']} thread(s)"
                      f"{', quick sizes' if m['quick'] else ''})."]
    probe_path = out / "probe.json"
    if probe_path.is_file():
        probe_result = json.loads(probe_path.read_text())
        lines += ["", f"Frozen-feature probe of the target ({probe_result['train_objects']} training, "
                      f"{probe_result['test_objects']} test objects; chance {100 * probe_result['chance']:.1f} %): "
                  + "; ".join(f"{r['features']} {100 * r['accuracy']:.1f} %" for r in probe_result["rows"]) + "."]
    lines += ["", "Expected (stated before the runs): " + EXPECTED + "."]
    lines += checks(rows)
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"settings": settings, "summary": rows, "bench": bench.get("meta")},
                                                 indent=1) + "\n")
    if rows:
        plot(rows, figure or out / "dapt_transfer.png")
    return text


def checks(rows: list[dict]) -> list[str]:
    """The expectations and the controls, each met or not, on the mean test accuracies."""
    mean = {row["arm"]: 100 * statistics.fmean(row["test"]) for row in rows}
    memory = {row["arm"]: row["bench"]["memory_ratio"] for row in rows if row["bench"]}
    items = []

    def check(text: str, arms: tuple[str, ...], ok) -> None:
        if all(arm in mean for arm in arms):
            items.append(f"- {text}: {'met' if ok() else 'NOT met'}")

    check("linear < BitFit and linear < VPT-deep", ("linear", "bitfit", "vpt_deep"),
          lambda: mean["linear"] < min(mean["bitfit"], mean["vpt_deep"]))
    check("BitFit/VPT-deep < LoRA/AdaptFormer", ("bitfit", "vpt_deep", "lora", "adaptformer"),
          lambda: max(mean["bitfit"], mean["vpt_deep"]) < min(mean["lora"], mean["adaptformer"]))
    check("LoRA/AdaptFormer <= DAPT", ("lora", "adaptformer", "dapt"),
          lambda: max(mean["lora"], mean["adaptformer"]) <= mean["dapt"])
    check("DAPT within 2 points of full fine-tuning", ("dapt", "full"), lambda: abs(mean["dapt"] - mean["full"]) <= 2)
    if "dapt" in memory:
        items.append(f"- DAPT peak step memory <= 0.65x full: {'met' if memory['dapt'] <= 0.65 else 'NOT met'} "
                     f"({memory['dapt']:.2f}x)")
    check("control: pre-training helps (full > scratch by more than 2 points)", ("full", "scratch"),
          lambda: mean["full"] - mean["scratch"] > 2)
    check("control: pre-trained features help (linear > random_frozen by more than 2 points)",
          ("linear", "random_frozen"), lambda: mean["linear"] - mean["random_frozen"] > 2)
    return ["", "Checks:", *items] if items else []


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4))
    positions = range(len(rows))
    full = next((row for row in rows if row["arm"] == "full"), None)
    if full is not None:
        middle = 100 * statistics.fmean(full["test"])
        left.axhspan(middle - 2, middle + 2, color="tab:blue", alpha=0.12, label="full fine-tuning ± 2 points")
    for x, row in zip(positions, rows):
        accuracies = [100 * a for a in row["test"]]
        control = row["arm"] in ("scratch", "random_frozen")
        left.errorbar(x, statistics.fmean(accuracies), yerr=statistics.pstdev(accuracies), fmt="s" if control else "o",
                      color="0.4" if control else "tab:blue", capsize=3)
        left.scatter([x] * len(accuracies), accuracies, s=10, color="0.6", zorder=3)
    left.set_xticks(list(positions), [f"{row['arm']}\n{row['parameters']['trainable_without_head']:,} + head"
                                      for row in rows], rotation=30, fontsize=7)
    left.set_ylabel("test accuracy (%): mean ± std, seeds grey")
    if full is not None:
        left.legend(fontsize=8)
    with_bench = [row for row in rows if row["bench"]]
    if with_bench:
        names = [row["arm"] for row in with_bench]
        right.bar(names, [row["bench"]["memory_ratio"] for row in with_bench], color="tab:gray",
                  label="peak step memory / full")
        right.plot(names, [1 / row["bench"]["speedup"] for row in with_bench], "o", color="tab:red",
                   label="step time / full")
        right.axhline(0.65, color="0.3", linestyle=":", label="0.65")
        right.set_ylabel("ratio to full fine-tuning (ppt bench models)")
        right.tick_params(axis="x", rotation=30)
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no ppt bench models results", ha="center", va="center")
        right.set_axis_off()
    figure.suptitle("Synthetic clean -> PB_T50_RS transfer of a pre-trained Point-MAE (4 x 128), 9 arms")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="the probe, the learning-rate sweep and the seeds (resumable)")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--backbone", type=Path, default=None,
                     help="pre-trained Point-MAE (a pointmae-pretrain checkpoint of the reduced transformer); "
                          "default: pre-train one into OUT/pretrain for --pretrain-steps")
    run.add_argument("--pretrain-steps", type=int, default=3000)
    run.add_argument("--steps", type=int, default=600, help="fine-tuning steps of every run")
    run.add_argument("--lrs", type=float, nargs="+", default=[5e-4, 2e-3], help="the sweep's learning rates")
    run.add_argument("--sweep-seed", type=int, default=0)
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds at the chosen learning rate")
    run.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    run.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    run.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run")
    run.add_argument("--bench", type=Path, default=None, help="ppt bench models results.json (default OUT/bench/results.json)")
    run.add_argument("--figure", type=Path, default=None)
    run.add_argument("--plan", action="store_true", help="print the runs and the time estimate, run nothing")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override for the backbone's pre-training and every run (after the experiment's settings)")
    prb = commands.add_parser("probe", help="(run calls it) the frozen-feature probe of the target")
    prb.add_argument("--out", type=Path, required=True)
    prb.add_argument("--backbone", type=Path, default=None)
    prb.add_argument("--set", action="append", default=[])
    scr = commands.add_parser("score", help="(run calls it) score one run folder on the held-out and test splits")
    scr.add_argument("run", type=Path)
    scr.add_argument("--arm", required=True, choices=list(ARMS))
    scr.add_argument("--lr", type=float, required=True)
    scr.add_argument("--seed", type=int, required=True)
    col = commands.add_parser("collect", help="copy logs, configs and scores (no weights) into a folder to commit")
    col.add_argument("--out", type=Path, required=True)
    col.add_argument("--into", type=Path, required=True)
    summ = commands.add_parser("summarize", help="recompute the tables and the figure from a folder of runs")
    summ.add_argument("--out", type=Path, required=True)
    summ.add_argument("--bench", type=Path, default=None)
    summ.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "run":
        if len(set(args.lrs)) != len(args.lrs) or len(set(args.seeds)) != len(args.seeds):
            parser.error("--lrs and --seeds must be distinct")
        return run_all(args)
    if args.command == "probe":
        return probe(args)
    if args.command == "score":
        score(args.run, args.arm, args.lr, args.seed)
        return 0
    if args.command == "collect":
        return collect(args.out, args.into)
    print(summarize(args.out, args.bench, args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
