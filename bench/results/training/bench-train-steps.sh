#!/usr/bin/env bash
# The train-step benchmarks quoted in docs/benchmarks.md ("Train steps"); run from the repository root.
set -euo pipefail
ppt bench models --device cpu --case "train step" --out bench/results/cpu-train-steps-models
ppt bench sparse_conv --device cpu --case "Pointcept SpUNet-S" --out bench/results/cpu-train-steps-spconv-dropin
