#!/usr/bin/env bash
# Bad input to the command line: one line on stderr naming the option, exit 2.
set -u
bin="$1"
passed=0
failed=0

expect_error() {  # expect_error "what it must say" args...
  local want="$1"
  shift
  local err rc
  err=$("$bin" "$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -ne 2 ]; then
    echo "FAIL: boundbench $* exited $rc, expected 2"; failed=$((failed + 1)); return
  fi
  if [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then
    echo "FAIL: boundbench $*: expected one line, got: $err"; failed=$((failed + 1)); return
  fi
  case "$err" in
    *"$want"*) echo "ok: boundbench $* -> $err"; passed=$((passed + 1)) ;;
    *) echo "FAIL: boundbench $*: '$err' lacks '$want'"; failed=$((failed + 1)) ;;
  esac
}

expect_error "unknown command 'frobnicate'" frobnicate
expect_error "unknown data set 'imagenet' (valid: mnist, fashion-mnist, cifar10)" data --dataset imagenet
expect_error "unknown split 'dev'" data --dataset mnist --split dev
expect_error "--dataset" data
expect_error "unrecognised option '--bogus'" data --dataset mnist --bogus
empty=$(mktemp -d)
expect_error "not found; fetch it with" data --dataset mnist --data-dir "$empty"
rmdir "$empty"

# Attacks: bad budgets, names and devices are refused before any work.
expect_error "--eps: must be positive and finite, got -0.1" attack --model mnist-mlp-relu --attack pgd --norm inf --eps -0.1
expect_error "--eps: must be positive and finite, got nan" attack --model mnist-mlp-relu --attack pgd --norm inf --eps nan
expect_error "--norm: unknown norm '3'" attack --model mnist-mlp-relu --attack pgd --norm 3
expect_error "unknown attack 'cw' (valid: fgsm, pgd, deepfool)" attack --model mnist-mlp-relu --attack cw --norm 2
expect_error "'deepfool' is not a fixed-budget attack" attack --model mnist-mlp-relu --attack deepfool --norm 2 --eps 0.1
expect_error "unknown model 'lenet'" attack --model lenet --attack pgd --norm 2
expect_error "do not fit model mnist-mlp-relu" attack --model mnist-mlp-relu --dataset cifar10 --attack pgd --norm 2
expect_error "--device: unknown device 'tpu'" attack --model mnist-mlp-relu --attack pgd --norm 2 --device tpu
if ! "$bin" attack --model mnist-mlp-relu --attack pgd --norm 2 --samples 1 --device cuda > /dev/null 2>&1; then
  expect_error "--device: 'cuda' requested" attack --model mnist-mlp-relu --attack pgd --norm 2 --device cuda
fi
expect_error "--samples: must be positive" attack --model mnist-mlp-relu --attack pgd --norm 2 --samples 0
expect_error "folder /nonexistent does not exist" attack --model mnist-mlp-relu --attack fgsm --norm 2 --out /nonexistent/x.jsonl
expect_error "unknown model 'nope'" train --model nope --out /tmp/x.pt
notts=$(mktemp -d)
printf 'not a model' > "$notts/model.pt"
expect_error "$notts/model.pt: not a TorchScript module" attack --model "$notts/model.pt" --dataset mnist --attack pgd --norm 2

# A real run writes one JSON object per sample; a failed run keeps what was there.
out="$notts/run.jsonl"
if "$bin" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.2 --samples 12 --batch 5 --out "$out" > /dev/null \
   && [ "$(wc -l < "$out")" -eq 12 ] && grep -q '"method":"fgsm-Linf"' "$out"; then
  echo "ok: attack --out wrote 12 records"; passed=$((passed + 1))
else
  echo "FAIL: attack --out did not write 12 records"; failed=$((failed + 1))
fi
before=$(sha256sum "$out")
"$bin" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps -1 --out "$out" > /dev/null 2>&1
if [ "$(sha256sum "$out")" = "$before" ] && [ ! -e "$out.tmp" ]; then
  echo "ok: a refused run leaves the earlier output intact"; passed=$((passed + 1))
else
  echo "FAIL: a refused run touched $out"; failed=$((failed + 1))
fi
rm -rf "$notts"

echo "cli tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
