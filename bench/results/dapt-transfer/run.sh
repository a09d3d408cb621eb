#!/usr/bin/env bash
# Issue 22 item 4, the DAPT transfer experiment of docs/dapt.md ("The transfer experiment"):
# a Point-MAE pre-trained as a masked autoencoder on the synthetic clean objects (the reduced
# transformer of the sanity gate: 4 blocks x 128, 4 heads, 32 groups of 32 points, 512 points),
# fine-tuned on the synthetic PB_T50_RS by 9 arms (full, linear, BitFit, LoRA, AdaptFormer,
# VPT-deep, DAPT; scratch and random-frozen controls), drop path 0.1 and no adapter dropout for
# all, 600 steps of batch 32; learning rate 5e-4 or 2e-3 chosen per arm on a held-out 20 % of the
# training split (seed 0), then seeds 0 1 2 at that rate, scored on the test split.
# Run from the repository root, on an otherwise idle 2-core machine.
#
# Budget (estimate, from CPU time per step measured with `ppt train` runs of 2 and 12 steps on the
# 2-core development machine while both cores were busy, so on the pessimistic side):
#   per step, one thread: full / scratch 1.38 s, BitFit 1.33, linear / random-frozen 0.45,
#   LoRA 0.57, VPT-deep 0.58, AdaptFormer 0.62, DAPT 0.64 (with the GLIBC_TUNABLES below;
#   without them full fine-tuning takes 2.0 s, DAPT 0.78: page faults of the >32 MB activations)
#   18 sweep runs + 18 runs of seeds 1 and 2, 600 steps each: 4.9 h of one core = 2.5 h on the
#   two cores (two runs at a time, one thread each); start-up, scoring, the probe and the
#   synthetic data add about 10 minutes, the benchmark (step 1) about 10: about 2.8 h in all.
#   A third learning rate (9 more runs) would make it about 3.4 h, over the 3-hour budget.
# Resumable: rerunning this script skips finished runs and continues a cut one from its last
# checkpoint (every 100 steps).
#
# The backbone: the sanity gate's 3000-step pre-training (bash bench/results/pointmae-sanity/run.sh,
# OUT=runs/pointmae-sanity), if that milestone passes the gate (docs/dapt.md), else its step-1000
# checkpoint (BACKBONE=runs/pointmae-sanity/pretrain/step-1000.safetensors, which passed);
# BACKBONE=... takes any pointmae-pretrain checkpoint of the same transformer. Without one, the script pre-trains it
# (3000 steps into OUT/pretrain: the sanity gate took 68 min per 1000 steps on one thread of the busy
# machine; outside the budget above).
set -euo pipefail
OUT=${OUT:-runs/dapt-transfer}
BACKBONE=${BACKBONE:-runs/pointmae-sanity/pretrain/step-3000.safetensors}
RESULTS=bench/results/dapt-transfer
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -f "$BACKBONE" ]; then backbone=(--backbone "$BACKBONE"); else backbone=(--pretrain-steps 3000); fi

# 1. Step time and peak step memory of every method at this size, one thread, nothing else running
#    (the tables take them from here, not from the training runs; no GLIBC_TUNABLES: the memory
#    figure is the resident set of the plain allocator).
[ -f "$OUT/bench/results.json" ] || python -m ppt bench models --threads 1 \
  --case "fine-tuning step at the transfer size" --out "$OUT/bench"

# 2. The probe, the learning-rate sweep and the seeds, two runs at a time. The tunables change no
#    number, only the kernel time of glibc's allocations (transparent huge pages).
GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296 \
  python bench/experiments/dapt_transfer.py run --out "$OUT" "${backbone[@]}" --steps 600 \
  --lrs 5e-4 2e-3 --sweep-seed 0 --seeds 0 1 2 --jobs 2 --threads 1

# 3. Logs, configs and scores (no weights) into the repository, and the tables and figure from them.
python bench/experiments/dapt_transfer.py collect --out "$OUT" --into "$RESULTS"
python bench/experiments/dapt_transfer.py summarize --out "$RESULTS" --figure docs/images/dapt-transfer.png
