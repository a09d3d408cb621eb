#!/usr/bin/env bash
# Issue 22's Point-MAE sanity gate (docs/dapt.md "Sanity gate: pre-training"): the reduced transformer
# of the DAPT experiment (4 blocks x 128, 32 groups of 32 points, 512 points per object), pre-trained
# 3000 steps at batch 32 on the synthetic ShapeNet-55 clouds, scored at 0, 1000 and 3000 steps.
# One torch thread. Run from the repository root; outputs in ${OUT:-runs/pointmae-sanity}.
set -euo pipefail
export OMP_NUM_THREADS=1
python bench/experiments/pointmae_sanity.py --out "${OUT:-runs/pointmae-sanity}" --milestones 1000 3000 \
  --set model.depth=4 --set model.dim=128 --set model.heads=4 --set model.num_groups=32 \
  --set model.group_size=32 --set data.num_points=512
