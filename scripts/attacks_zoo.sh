#!/usr/bin/env bash
# Regenerates results/attacks_zoo.txt: the minimal-distortion attacks with
# default options on the first 100 test images, FGSM, PGD and DeepFool on the
# MNIST MLP and DeepFool on the CIFAR-10 CNN, for L1, L2 and Linf.
#
# usage: scripts/attacks_zoo.sh [build-dir]   (needs the data: scripts/setup.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
out="$root/results/attacks_zoo.txt"
tmp="$(mktemp "$out.XXXXXX")"
trap 'rm -f "$tmp"' EXIT

run() {
  "$build/boundbench" attack --model "$1" --attack "$2" --norm "$3" --samples 100 >> "$tmp"
}
for attack in fgsm pgd deepfool; do
  for norm in 1 2 inf; do
    run mnist-mlp-relu "$attack" "$norm"
  done
done
for norm in 1 2 inf; do
  run cifar10-cnn-relu deepfool "$norm"
done
mv "$tmp" "$out"
trap - EXIT
echo "attacks_zoo.sh: wrote $out"
