#!/usr/bin/env bash
# Hein & Andriushchenko's closed form (hein-one-layer) against the generic
# local ball over the interval Jacobian, and the references beside them, on
# the zoo's one-hidden-layer softplus MLP, p = 1, 2 and inf, against the best
# of DeepFool and PGD: results/bounds/mnist-mlp1-softplus-*.jsonl, the
# summary lines in results/hein_vs_interval.txt and the table
# results/hein_vs_interval.md (scripts/bounds_table.py --versus hein-one-layer).
#   scripts/hein_vs_interval.sh [SAMPLES]      (default 20)
# Environment: BOUNDBENCH_BIN (default build/boundbench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
samples=${1:-20}
bin=${BOUNDBENCH_BIN:-$root/build/boundbench}
if [ ! -x "$bin" ]; then
  echo "hein_vs_interval.sh: $bin not found: build first (scripts/setup.sh)" >&2
  exit 2
fi
model=mnist-mlp1-softplus
out="$root/results/bounds"
mkdir -p "$out"
summary="$root/results/hein_vs_interval.txt"
: > "$summary.new"
for norm in inf 2 1; do
  for bound in hein-one-layer local-ball-interval-ibp local-ball-interval-crown local-ball-shells-interval-crown \
               crown-radius local-ball-sampled lipschitz-clever; do
    "$bin" bound --model "$model" --bound "$bound" --norm "$norm" --samples "$samples" --batch 10 \
      --attack deepfool,pgd --out "$out/$model-L$norm-$bound.jsonl" | tee -a "$summary.new"
  done
done
mv "$summary.new" "$summary"
{
  echo "# Hein's closed form against the interval local ball on $model"
  echo
  echo "Made by \`scripts/hein_vs_interval.sh $samples\` (first $samples MNIST test images, default options,"
  echo "reference: the smaller of DeepFool's and PGD's distortions) with \`scripts/bounds_table.py --versus"
  echo "hein-one-layer\`. The last column is each bound divided by \`hein-one-layer\` on the same sample."
  echo
  python3 "$root/scripts/bounds_table.py" --versus hein-one-layer "$out/$model"-L*.jsonl
} > "$root/results/hein_vs_interval.md"
