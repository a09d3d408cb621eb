#!/usr/bin/env bash
# Issue 11's experiment: single-dataset vs naive joint vs PPT joint training on the three synthetic
# flavors (Structured3D, ScanNet, S3DIS rooms), seeds 0 1 2, the same budget for every run:
# STEPS optimizer steps of data.batch_size scenes each (the recipes' defaults: 600 steps x 2 scenes).
# Each run evaluates every dataset it trains on at the end; the table is the final per-dataset
# val mIoU, mean +- std over the seeds (docs/ppt.md, "Earlier comparison (superseded)").
#
#   bash bench/ppt_experiment.sh                     # the experiment (hours on a 2-core CPU)
#   STEPS=3 EXTRA="--set data.synthetic.scenes=6" OUT=/tmp/ppt-exp-smoke bash bench/ppt_experiment.sh   # smoke
set -euo pipefail
STEPS=${STEPS:-600}
SEEDS=${SEEDS:-"0 1 2"}
OUT=${OUT:-runs/ppt-experiment}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
PYTHON=${PYTHON:-python}

for seed in $SEEDS; do
  for recipe in single-structured3d single-scannet single-s3dis naive-joint ppt-joint; do
    if [ -f "$OUT/$recipe-seed$seed/last.safetensors" ]; then continue; fi  # finished earlier
    "$PYTHON" -m ppt train "$recipe" --out "$OUT/$recipe-seed$seed" --no-progress \
      --set train.seed="$seed" --set train.steps="$STEPS" --set train.eval_every=0 --set train.checkpoint_every=0 \
      "${EXTRA_ARGS[@]}"
  done
done

"$PYTHON" - "$OUT" $SEEDS <<'PY'
import json, statistics, sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

out, seeds = Path(sys.argv[1]), sys.argv[2:]
datasets = ("structured3d", "scannet", "s3dis")
rows = {"single": {d: f"single-{d}" for d in datasets}, "naive joint": dict.fromkeys(datasets, "naive-joint"),
        "PPT joint": dict.fromkeys(datasets, "ppt-joint")}


def final_miou(run: str, dataset: str) -> float:
    records = [json.loads(line) for line in (out / run / "log.jsonl").read_text().splitlines()]
    return 100 * [r for r in records if "eval" in r][-1]["eval"][dataset]["mIoU"]


values = {label: {d: [final_miou(f"{recipes[d]}-seed{seed}", d) for seed in seeds] for d in datasets}
          for label, recipes in rows.items()}
lines = ["| training | " + " | ".join(f"{d} mIoU" for d in datasets) + " |", "|---|" + "---|" * len(datasets)]
for label, per_dataset in values.items():
    cells = [f"{statistics.mean(v):.1f} +- {statistics.stdev(v) if len(v) > 1 else 0.0:.1f}" for v in per_dataset.values()]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
table = "\n".join(lines) + "\n"
(out / "results.md").write_text(table)
print(table, end="")

figure, axis = plt.subplots(figsize=(7, 3.5))
width = 0.8 / len(values)
for i, (label, per_dataset) in enumerate(values.items()):
    for j, d in enumerate(datasets):
        x = j + (i - (len(values) - 1) / 2) * width
        axis.bar(x, statistics.mean(per_dataset[d]), width, color=f"C{i}", label=label if j == 0 else None)
        axis.plot([x] * len(per_dataset[d]), per_dataset[d], "k.", markersize=4)  # one dot per seed
axis.set_xticks(range(len(datasets)), datasets)
axis.set_ylabel(f"val mIoU (%), mean of {len(seeds)} seeds")
axis.legend()
figure.tight_layout()
figure.savefig(out / "ppt_synthetic.png", dpi=120)
print(f"{out / 'results.md'}, {out / 'ppt_synthetic.png'}")
PY
