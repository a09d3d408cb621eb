#!/usr/bin/env bash
# The 20-minute CPU training run of docs/training.md; run from any folder (writes runs/scannet-cpu20/).
set -euo pipefail
# PPT_CACHE (default ~/.cache/ppt) holds the synthetic rooms written on first use.
ppt train spunet-scannet --out runs/scannet-cpu20 \
  --set data.synthetic.density=0.3 --set data.grid_size=0.05 --set model.base_channels=16 \
  --set "model.channels=[16,32,64,64,64,48,32,32]" --set "model.layers=[1,1,1,1,1,1,1,1]" \
  --set train.steps=2500 --set train.eval_every=250 --set train.checkpoint_every=250
