#!/usr/bin/env bash
# Every bound of the registry against the best of DeepFool and PGD on the
# zoo's MNIST MLPs, p = 2 and inf: results/bounds/*.jsonl (one row per
# sample), the summary lines in results/bounds_zoo.txt and the table
# results/bounds_zoo.md (scripts/bounds_table.py).
#   scripts/bounds_zoo.sh [SAMPLES]      (default 20; the shells 10)
# Environment: BOUNDBENCH_BIN (default build/boundbench); SHELLS_SAMPLES, the
# cap on the shells' samples (default 10: they cost 2 to 10 s a sample).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
samples=${1:-20}
bin=${BOUNDBENCH_BIN:-$root/build/boundbench}
shells_cap=${SHELLS_SAMPLES:-10}
if [ ! -x "$bin" ]; then
  echo "bounds_zoo.sh: $bin not found: build first (scripts/setup.sh)" >&2
  exit 2
fi
out="$root/results/bounds"
mkdir -p "$out"
summary="$root/results/bounds_zoo.txt"
: > "$summary.new"
for model in mnist-mlp-relu mnist-mlp-softplus; do
  for norm in inf 2; do
    for bound in crown-radius local-ball-shells-interval-crown local-ball-interval-crown local-ball-interval-ibp \
                 theorem1-interval-crown theorem1-interval-ibp lipschitz-global \
                 lipschitz-clever local-ball-sampled lipschitz-sampled theorem1-sampled; do
      n=$samples
      case "$bound" in local-ball-shells-*) n=$(( samples < shells_cap ? samples : shells_cap )) ;; esac
      "$bin" bound --model "$model" --bound "$bound" --norm "$norm" --samples "$n" --batch 10 \
        --attack deepfool,pgd --out "$out/$model-L$norm-$bound.jsonl" | tee -a "$summary.new"
    done
  done
done
mv "$summary.new" "$summary"
python3 "$root/scripts/bounds_table.py" "$out"/mnist-mlp-relu-L*.jsonl "$out"/mnist-mlp-softplus-L*.jsonl \
  > "$root/results/bounds_zoo.md"
