#!/usr/bin/env bash
# Issue 22 item 3 (docs/ppt.md "Experiment (issue 22)"): the conflict and shift scenarios, every arm,
# seeds 0 1 2, 1000 steps of 2 scenes with evaluation every 250, 40 rooms per dataset at 0.3 density,
# 5 cm grid, precise BN statistics from 30 training batches before each evaluation, and the reduced
# SpUNet of docs/training.md's 20-minute run; one torch thread per run. About 10 minutes a run
# (39 runs, conflict's 7 arms and shift's 6 times 3 seeds: about 3 h 15 min on 2 idle cores).
# Run from the repository root; outputs in ${OUT:-runs/ppt-mechanisms}.
set -euo pipefail
export OMP_NUM_THREADS=1
# The two scenarios run side by side, one per core; their logs go to OUT/<scenario>.log.
mkdir -p "${OUT:-runs/ppt-mechanisms}"
pids=()
for scenario in conflict shift; do
  python bench/experiments/ppt_mechanisms.py --out "${OUT:-runs/ppt-mechanisms}" --scenario $scenario \
    --steps 1000 --eval-every 250 --seeds 0 1 2 --scenes 40 --density 0.3 --set data.grid_size=0.05 \
    --set train.precise_bn_batches=30 --set model.base_channels=16 \
    --set "model.channels=[16,32,64,64,64,48,32,32]" --set "model.layers=[1,1,1,1,1,1,1,1]" \
    > "${OUT:-runs/ppt-mechanisms}/$scenario.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # fails when either scenario failed
# The runs' logs and configs (no weights) beside this script, and the tables and figures from them.
out=${OUT:-runs/ppt-mechanisms}
for run in "$out"/*/runs/*/; do
  logs=bench/results/ppt-mechanisms/${run#"$out"/}
  mkdir -p "$logs" && cp "$run"log.jsonl "$run"config.yaml "$logs"
done
python bench/experiments/ppt_mechanisms.py --out bench/results/ppt-mechanisms --summary-only
