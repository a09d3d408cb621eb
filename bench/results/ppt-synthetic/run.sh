#!/usr/bin/env bash
# The PPT experiment of docs/ppt.md: single vs naive joint vs PPT joint on the synthetic Structured3D /
# ScanNet / S3DIS rooms (80 per flavor: Structured3D 6 val rooms, ScanNet 15, S3DIS Area_5 13), seeds 0 1 2, 200 steps x 2 scenes per run, a reduced SpUNet (the model of the
# 20-minute run in docs/training.md), one torch thread per run. Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
STEPS=200 OUT=${OUT:-runs/ppt-synthetic} \
EXTRA="--set data.synthetic.scenes=80 --set data.synthetic.density=0.3 --set data.grid_size=0.05 --set model.base_channels=16 --set model.channels=[16,32,64,64,64,48,32,32] --set model.layers=[1,1,1,1,1,1,1,1]" \
  bash bench/ppt_experiment.sh
