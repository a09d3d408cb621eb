#!/usr/bin/env bash
# Issue 11's experiment: single-dataset vs naive joint vs PPT joint training on the three synthetic
# flavors (Structured3D, ScanNet, S3DIS rooms), seeds 0 1 2, the same budget for every run:
# STEPS optimizer steps of data.batch_size scenes each (the recipes' defaults: 600 steps x 2 scenes).
# Each run evaluates every dataset it trains on at the end; the table is the final per-dataset
# val mIoU, mean +- std over the seeds (docs/ppt.md, "Experiment").
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

out, seeds = Path(sys.argv[1]), sys.argv[2:]
datasets = ("structured3d", "scannet", "s3dis")
rows = {"single": {d: f"single-{d}" for d in datasets}, "naive joint": dict.fromkeys(datasets, "naive-joint"),
        "PPT joint": dict.fromkeys(datasets, "ppt-joint")}
print("| training | " + " | ".join(f"{d} mIoU" for d in datasets) + " |")
print("|---|" + "---|" * len(datasets))
for label, recipes in rows.items():
    cells = []
    for d in datasets:
        values = []
        for seed in seeds:
            log = (out / f"{recipes[d]}-seed{seed}" / "log.jsonl").read_text().splitlines()
            values.append(100 * [json.loads(line) for line in log if "eval" in json.loads(line)][-1]["eval"][d]["mIoU"])
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        cells.append(f"{statistics.mean(values):.1f} +- {spread:.1f}")
    print(f"| {label} | " + " | ".join(cells) + " |")
PY
