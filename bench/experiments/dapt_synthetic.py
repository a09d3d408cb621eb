"""Issue 12's experiment: pre-train Point-MAE briefly on synthetic objects, then fine-tune it on the
synthetic ScanObjectNN with DAPT, full fine-tuning, linear probing and the PEFT baselines, each
with the same budget (steps, batch, schedule) over several seeds.

Every run is a ``ppt train`` subprocess, so its peak resident memory (``ru_maxrss`` of that
process: weights, activations, gradients, optimizer state, plus the constant data and runtime
footprint shared by all methods) is measured on its own. Per run it records the final test
accuracy, trainable and total parameters, peak training memory and the median step time (from
``log.jsonl``); it writes ``OUT/results.json``, ``OUT/results.md`` (mean ± std per method) and
``OUT/dapt_synthetic.png``.

Tiny check (a few steps, one seed, a small transformer)::

    python bench/experiments/dapt_synthetic.py --out runs/dapt-synthetic-tiny --pretrain-steps 2 --steps 2 \
        --seeds 0 --set model.depth=2 --set model.dim=48 --set model.heads=2 --set data.batch_size=8 \
        --set data.synthetic.train_per_class=4 --set data.synthetic.test_per_class=2

Meaningful budget on CPU (see docs/dapt.md for the time it takes)::

    python bench/experiments/dapt_synthetic.py --out runs/dapt-synthetic --pretrain-steps 600 --steps 300 \
        --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("dapt", "full", "linear", "bitfit", "lora", "adaptformer", "vpt_deep")
PARAMETERS = re.compile(r"with ([\d,]+) trainable of ([\d,]+) parameters")


def run_train(recipe: str, out: Path, overrides: list[str], log: Path) -> dict:
    """One ``ppt train`` subprocess; its stdout/stderr go to ``log``. Returns the parameter counts,
    peak RSS and wall time; raises when it fails."""
    command = [sys.executable, "-m", "ppt", "train", recipe, "--out", str(out), "--no-progress"]
    for item in overrides:
        command += ["--set", item]
    started = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed; see {log}:\n{text[-3000:]}")
    match = PARAMETERS.search(text)
    return {"trainable": int(match.group(1).replace(",", "")), "total": int(match.group(2).replace(",", "")),
            "peak_rss_mib": usage.ru_maxrss / 1024, "wall_s": wall}


def read_log(out: Path) -> tuple[float, float]:
    """Median seconds per step (excluding the first, which warms up) and the final test accuracy."""
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    times = [r["time"] for r in records if "time" in r]
    steps = np.diff(times)[1:] if len(times) > 2 else np.diff([0.0, *times])
    evaluations = [r["eval"] for r in records if "eval" in r]
    accuracy = next(iter(evaluations[-1].values()))["allAcc"]
    return float(np.median(steps)), float(accuracy)


def summarize(rows: list[dict]) -> list[dict]:
    table = []
    for method in dict.fromkeys(row["method"] for row in rows):
        runs = [row for row in rows if row["method"] == method]
        accuracy = np.array([row["accuracy"] for row in runs]) * 100
        table.append({"method": method, "seeds": len(runs), "accuracy_mean": float(accuracy.mean()),
                      "accuracy_std": float(accuracy.std()), "trainable": runs[0]["trainable"],
                      "total": runs[0]["total"], "peak_rss_mib": float(np.median([r["peak_rss_mib"] for r in runs])),
                      "step_s": float(np.median([r["step_s"] for r in runs]))})
    return table


def markdown(table: list[dict]) -> str:
    full = next((row for row in table if row["method"] == "full"), None)
    lines = ["| method | accuracy (%) | trainable params | peak training memory (MiB) | step time (s) |",
             "|---|---|---|---|---|"]
    for row in table:
        ratio = f" ({row['peak_rss_mib'] / full['peak_rss_mib']:.2f}x full)" if full else ""
        lines.append(f"| {row['method']} | {row['accuracy_mean']:.1f} ± {row['accuracy_std']:.1f} (n={row['seeds']}) | "
                     f"{row['trainable']:,} of {row['total']:,} | {row['peak_rss_mib']:.0f}{ratio} | {row['step_s']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for row in table:
        left.errorbar(row["trainable"], row["accuracy_mean"], yerr=row["accuracy_std"], fmt="o", capsize=3)
        left.annotate(row["method"], (row["trainable"], row["accuracy_mean"]), textcoords="offset points",
                      xytext=(4, 4), fontsize=8)
    left.set_xscale("log")
    left.set_xlabel("trainable parameters")
    left.set_ylabel("test accuracy (%), mean ± std over seeds")
    names = [row["method"] for row in table]
    right.bar(names, [row["peak_rss_mib"] for row in table], color="tab:gray")
    right.set_ylabel("peak training memory (MiB, process RSS)")
    right.tick_params(axis="x", rotation=30)
    figure.suptitle("Synthetic ScanObjectNN: fine-tuning a pre-trained Point-MAE, same budget per method")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pretrain-steps", type=int, default=600)
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps of every method")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--variant", default="PB_T50_RS", choices=("PB_T50_RS", "OBJ_BG", "OBJ_ONLY"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every run (pre-training and fine-tuning), e.g. model.depth=4")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    pretrain = args.out / "pretrain"
    if not (pretrain / "last.safetensors").is_file():
        print(f"pre-training Point-MAE for {args.pretrain_steps} steps -> {pretrain}", flush=True)
        run_train("pointmae-pretrain", pretrain, [f"train.steps={args.pretrain_steps}", "train.eval_every=0",
                                                   "train.checkpoint_every=0", *args.set], args.out / "pretrain.log")
    weights = pretrain / "last.safetensors"

    results_path = args.out / "results.json"
    rows = json.loads(results_path.read_text())["runs"] if results_path.is_file() else []
    done = {(row["method"], row["seed"]) for row in rows}
    for seed in args.seeds:
        for method in args.methods:
            if (method, seed) in done:
                continue
            recipe = "dapt-scanobjectnn" if method == "dapt" else "pointmae-finetune-scanobjectnn"
            out = args.out / f"{method}-seed{seed}"
            overrides = [f"model.peft={method}", f"train.seed={seed}", f"train.steps={args.steps}",
                         f"model.weights={weights}", f"data.sources.scanobjectnn.variant={args.variant}",
                         "train.eval_every=0", "train.checkpoint_every=0", *args.set]
            print(f"{method} seed {seed} -> {out}", flush=True)
            measured = run_train(recipe, out, overrides, args.out / f"{method}-seed{seed}.log")
            step_s, accuracy = read_log(out)
            rows.append({"method": method, "seed": seed, "accuracy": accuracy, "step_s": step_s, **measured})
            print(f"  accuracy {100 * accuracy:.1f} %, {measured['trainable']:,} trainable, peak "
                  f"{measured['peak_rss_mib']:.0f} MiB, {step_s:.3f} s/step", flush=True)
            results_path.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "runs": rows},
                                               indent=1))

    table = summarize(rows)
    results_path.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "runs": rows,
                                        "summary": table}, indent=1))
    (args.out / "results.md").write_text(markdown(table))
    plot(table, args.out / "dapt_synthetic.png")
    print(markdown(table))
    print(f"wall time {time.perf_counter() - started:.0f} s; {results_path}, {args.out / 'results.md'}, "
          f"{args.out / 'dapt_synthetic.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
