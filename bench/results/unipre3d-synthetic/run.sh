#!/usr/bin/env bash
# The UniPre3D experiment of docs/unipre3d.md (preset "cpu" of bench/unipre3d_object_experiment.py):
# 800 pre-training steps on synthetic renders, then 200 fine-tuning steps on the synthetic ScanObjectNN
# from the pre-trained backbone and from scratch, seeds 0 1 2, one torch thread. Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
python bench/unipre3d_object_experiment.py --preset cpu --seeds 3 --threads 1 --out "${OUT:-runs/unipre3d-synthetic}"
