#!/usr/bin/env bash
# Retrains the model zoo into models/zoo/ (checkpoints, metadata records and
# manifest.json) with the recipes of models/architectures.cpp, seed 0.
# usage: scripts/train_zoo.sh [MODEL...]     (default: every zoo model)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BOUNDBENCH_BIN:-$root/build/boundbench}
models=(mnist-mlp-relu mnist-mlp-softplus mnist-mlp1-softplus mnist-mlp-small-relu
        mnist-cnn-relu mnist-cnn-softplus cifar10-cnn-relu cifar10-cnn-softplus)
if [ $# -gt 0 ]; then
  models=("$@")
fi
if [ ! -x "$bin" ]; then
  echo "train_zoo.sh: $bin not found: build first (scripts/setup.sh)" >&2
  exit 2
fi
for model in "${models[@]}"; do
  "$bin" train --model "$model" --seed 0 --out "$root/models/zoo/$model.pt" --manifest
done
