#!/usr/bin/env bash
# The DAPT experiment of docs/dapt.md: Point-MAE pre-trained 400 steps on synthetic objects, then each
# method fine-tuned 200 steps (batch 32) on the synthetic PB_T50_RS, seeds 0 1 2, with a reduced
# transformer (4 blocks x 128, 32 groups of 32 points, 512 points per object), one torch thread.
# Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
python bench/experiments/dapt_synthetic.py --out "${OUT:-runs/dapt-synthetic}" --pretrain-steps 400 --steps 200 \
  --seeds 0 1 2 --set model.depth=4 --set model.dim=128 --set model.heads=4 --set model.num_groups=32 \
  --set model.group_size=32 --set data.num_points=512
