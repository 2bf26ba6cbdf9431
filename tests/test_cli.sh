#!/usr/bin/env bash
# Bad input to the command line: one line on stderr naming the option or file,
# exit 2, nothing on stdout (no work done), nothing left behind.
set -u
bin="$1"
src=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

pass() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() {  # check "what" test-command...
  local what="$1"
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

expect_error() {  # expect_error "what it must say" args...
  local want="$1"
  shift
  local err rc
  err=$("$bin" "$@" 2>&1 >"$work/stdout")
  rc=$?
  if [ "$rc" -ne 2 ]; then
    fail "boundbench $* exited $rc, expected 2"; return
  fi
  if [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then
    fail "boundbench $*: expected one line, got: $err"; return
  fi
  if [ -s "$work/stdout" ]; then
    fail "boundbench $*: refused, but printed results first: $(head -c 200 "$work/stdout")"; return
  fi
  case "$err" in
    *"$want"*) pass "boundbench $* -> $err" ;;
    *) fail "boundbench $*: '$err' lacks '$want'" ;;
  esac
}

# Files in a folder other than the expected ones (temporary files left behind).
only_files() {  # only_files DIR NAME...
  local dir="$1"
  shift
  local found expected
  found=$(cd "$dir" && ls -A | sort)
  expected=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
  [ "$found" = "$expected" ] || { echo "  $dir holds: $found"; return 1; }
}

expect_error "unknown command 'frobnicate'" frobnicate
expect_error "unknown data set 'imagenet' (valid: mnist, fashion-mnist, cifar10)" data --dataset imagenet
expect_error "unknown split 'dev'" data --dataset mnist --split dev
expect_error "--dataset" data
expect_error "unrecognised option '--bogus'" data --dataset mnist --bogus
empty=$(mktemp -d)
# The hint names the folder the user gave.
expect_error "not found; fetch it with \`datasets/fetch.sh --data-dir $empty mnist\`" data --dataset mnist --data-dir "$empty"
rmdir "$empty"

# Stray arguments and abbreviated options are refused, for every command.
expect_error "unexpected argument 'extra'" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.1 --samples 1 extra
expect_error "unexpected argument 'test'" data --dataset mnist test
expect_error "unrecognised option '--ep'" attack --model mnist-mlp-relu --attack fgsm --norm inf --ep 0.1 --samples 1
expect_error "unrecognised option '--data'" data --data mnist
expect_error "unrecognised option '--epoch'" train --model mnist-mlp-relu --epoch 1 --out "$work/never.pt"

# The row-kernel choice from the environment (core/row_kernels.h).
BB_ROW_KERNELS=avx9000 expect_error "BB_ROW_KERNELS: row kernels: this CPU has no 'avx9000' variant" data --dataset mnist

# Attacks: bad budgets, names and devices are refused before any work.
expect_error "--eps: must be positive and finite, got -0.1" attack --model mnist-mlp-relu --attack pgd --norm inf --eps -0.1
expect_error "--eps: must be positive and finite, got nan" attack --model mnist-mlp-relu --attack pgd --norm inf --eps nan
expect_error "--eps 1e-300: below float32's smallest normal number" attack --model mnist-mlp-relu --attack pgd --norm inf --eps 1e-300
expect_error "--eps 1e+300: beyond float32's range" attack --model mnist-mlp-relu --attack pgd --norm inf --eps 1e300
expect_error "--seed: expected an integer from 0 to 18446744073709551615, got '-1'" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.1 --samples 1 --seed -1
expect_error "--seed: expected an integer from 0 to 18446744073709551615, got '1.5'" train --model mnist-mlp-relu --seed 1.5 --out "$work/never.pt"
expect_error "--samples 1000000: the mnist test split has 10000 images" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.1 --samples 1000000
expect_error "--norm: unknown norm '3'" attack --model mnist-mlp-relu --attack pgd --norm 3
expect_error "unknown attack 'cw' (valid: fgsm, pgd, deepfool, fmn)" attack --model mnist-mlp-relu --attack cw --norm 2
expect_error "'deepfool' is not a fixed-budget attack" attack --model mnist-mlp-relu --attack deepfool --norm 2 --eps 0.1
expect_error "unknown model 'lenet'" attack --model lenet --attack pgd --norm 2
expect_error "do not fit model mnist-mlp-relu" attack --model mnist-mlp-relu --dataset cifar10 --attack pgd --norm 2
expect_error "--device: unknown device 'tpu'" attack --model mnist-mlp-relu --attack pgd --norm 2 --device tpu
if ! "$bin" attack --model mnist-mlp-relu --attack pgd --norm 2 --samples 1 --device cuda > /dev/null 2>&1; then
  expect_error "--device: 'cuda' requested" attack --model mnist-mlp-relu --attack pgd --norm 2 --device cuda
fi
expect_error "--samples: must be positive" attack --model mnist-mlp-relu --attack pgd --norm 2 --samples 0
expect_error "unknown model 'nope'" train --model nope --out /tmp/x.pt
notts="$work/notts"
mkdir "$notts"
printf 'not a model' > "$notts/model.pt"
expect_error "$notts/model.pt: not a TorchScript module" attack --model "$notts/model.pt" --dataset mnist --attack pgd --norm 2
# A zoo checkpoint given as a file says which name loads it.
expect_error "the zoo checkpoint of mnist-mlp-relu, not a TorchScript module; use --model mnist-mlp-relu" \
  attack --model "$src/models/zoo/mnist-mlp-relu.pt" --dataset mnist --attack pgd --norm 2
# A model missing from the zoo: the hint is a command that works.
mkdir "$work/zoo"
printf '{"models": []}\n' > "$work/zoo/manifest.json"
BOUNDBENCH_ZOO_DIR="$work/zoo" expect_error \
  "train it with \`boundbench train --model mnist-mlp-relu --out $work/zoo/mnist-mlp-relu.pt --manifest\`" \
  attack --model mnist-mlp-relu --attack pgd --norm 2

# Output paths are checked before any work: a missing folder, a folder, a
# special file, a folder that takes no files; none of them is replaced.
expect_error "--out /nonexistent/x.jsonl: folder /nonexistent does not exist" attack --model mnist-mlp-relu --attack fgsm --norm 2 --out /nonexistent/x.jsonl
expect_error "--out /proc/x.jsonl: cannot create a file in folder /proc" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.1 --samples 1 --out /proc/x.jsonl
expect_error "--out /proc/m.pt: cannot create a file in folder /proc" train --model mnist-mlp-relu --epochs 1 --out /proc/m.pt
mkdir -p "$work/out/folder"
expect_error "--out $work/out/folder: is a folder, not a file" train --model mnist-mlp-relu --epochs 1 --out "$work/out/folder"
mkfifo "$work/fifo"
expect_error "--out $work/fifo: is a FIFO, not a regular file; refusing to replace it" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.1 --samples 1 --out "$work/fifo"
expect_error "--out $work/fifo: is a FIFO" train --model mnist-mlp-relu --epochs 1 --out "$work/fifo"
check "a FIFO given as --out is still a FIFO" test -p "$work/fifo"
ln -s fifo "$work/fifo-link"
expect_error "--out $work/fifo-link (a link to $work/fifo): is a FIFO" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.1 --samples 1 --out "$work/fifo-link"
if [ "$(id -u)" -ne 0 ]; then
  mkdir "$work/readonly" && chmod a-w "$work/readonly"
  expect_error "cannot create a file in folder $work/readonly (Permission denied)" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.1 --samples 1 --out "$work/readonly/x.jsonl"
fi
# train: the metadata (*.json beside the checkpoint) and the zoo manifest must
# not land on the checkpoint or on each other.
expect_error "--out $work/m.json: the metadata record goes to $work/m.json too" train --model mnist-mlp-relu --epochs 1 --out "$work/m.json"
expect_error "--out $work/manifest.pt: the metadata record $work/manifest.json would overwrite the zoo manifest" \
  train --model mnist-mlp-relu --epochs 1 --out "$work/manifest.pt" --manifest
mkdir "$work/badzoo" && printf '{"models": 3}' > "$work/badzoo/manifest.json"
expect_error "$work/badzoo/manifest.json: expected an object with a \"models\" array" \
  train --model mnist-mlp-relu --epochs 1 --out "$work/badzoo/m.pt" --manifest
check "refused runs leave nothing behind" only_files "$work/out" folder
check "refused train runs leave nothing in the output folder" only_files "$work/badzoo" manifest.json

# Data files that are folders, and an IDX header whose dimensions multiply
# past 2^64 to the real file size (2^64 + 4 = 769546 x 494770 x 48448661).
data=${BOUNDBENCH_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/boundbench}
mkdir -p "$work/data/mnist/t10k-images-idx3-ubyte" "$work/data/cifar10/cifar-10-batches-bin/test_batch.bin"
touch "$work/data/mnist/t10k-labels-idx1-ubyte"
expect_error "$work/data/mnist/t10k-images-idx3-ubyte: is a folder, not a data file" data --dataset mnist --data-dir "$work/data"
expect_error "$work/data/cifar10/cifar-10-batches-bin/test_batch.bin: is a folder, not a data file" data --dataset cifar10 --data-dir "$work/data"
if [ -f "$data/mnist/t10k-images-idx3-ubyte" ]; then
  rmdir "$work/data/mnist/t10k-images-idx3-ubyte"
  rm "$work/data/mnist/t10k-labels-idx1-ubyte"
  ln -s "$data/mnist/t10k-images-idx3-ubyte" "$work/data/mnist/t10k-images-idx3-ubyte"
  mkdir "$work/data/mnist/t10k-labels-idx1-ubyte"
  expect_error "$work/data/mnist/t10k-labels-idx1-ubyte: is a folder, not a data file" data --dataset mnist --data-dir "$work/data"
fi
rm -rf "$work/data/mnist" && mkdir -p "$work/data/mnist"
printf '\x00\x00\x08\x03\x00\x0b\xbe\x0a\x00\x07\x8c\xb2\x02\xe3\x44\x95\x01\x02\x03\x04' > "$work/data/mnist/t10k-images-idx3-ubyte"
touch "$work/data/mnist/t10k-labels-idx1-ubyte"
expect_error "t10k-images-idx3-ubyte: header claims 769546 images of 494770x48448661 pixels" data --dataset mnist --data-dir "$work/data"

# NaN logits on real images (finite on the all-zero batch the loader tries):
# on the first batch, and on a later one (sample 3 only), named by sample.
# TorchScript models exported by Debian's python3-torch, as in the GoogleTest
# suite.
python=/usr/bin/python3
if [ -f "$data/mnist/t10k-images-idx3-ubyte" ] && "$python" -c 'import torch' 2> /dev/null; then
  # torch.jit.script reads the module's source: it must come from a file.
  cat > "$work/export_nan.py" <<'EOF'
import sys
import torch

images = torch.frombuffer(bytearray(open(sys.argv[1], "rb").read()[16:16 + 4 * 784]), dtype=torch.uint8)
sums = (images.view(4, 784).float() / 255).sum(1)
assert (sums[:3] - sums[3]).abs().min() > 1, sums


class Model(torch.nn.Module):
    def __init__(self, nan_at: float):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(784, 10)
        self.nan_at = nan_at

    def forward(self, x):
        flat = x.flatten(1)
        s = flat.sum(1, keepdim=True)
        if self.nan_at < 0:  # NaN wherever an image has ink; 0 on zeros
            return self.fc(flat) + torch.sqrt(-s)
        return self.fc(flat) + torch.sqrt((s - self.nan_at).abs() - 0.5)


class Detached(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)).detach()


torch.jit.script(Model(-1.0)).save(sys.argv[2])
torch.jit.script(Model(float(sums[3]))).save(sys.argv[3])
torch.jit.script(Detached()).save(sys.argv[4])
EOF
  "$python" "$work/export_nan.py" "$data/mnist/t10k-images-idx3-ubyte" "$work/nan_on_data.pt" "$work/nan_on_sample3.pt" "$work/detached.pt"
  expect_error "mnist test images: model '$work/nan_on_data.pt' returned NaN or infinite logits for sample 0" \
    attack --model "$work/nan_on_data.pt" --dataset mnist --attack fgsm --norm inf --eps 0.1 --samples 4 --batch 2
  expect_error "mnist test images: model '$work/nan_on_sample3.pt' returned NaN or infinite logits for sample 3" \
    attack --model "$work/nan_on_sample3.pt" --dataset mnist --attack fgsm --norm inf --eps 0.1 --samples 4 --batch 2
  # Logits without a gradient: the model is named.
  expect_error "model '$work/detached.pt': its logits carry no gradient" \
    attack --model "$work/detached.pt" --dataset mnist --attack fgsm --norm inf --eps 0.1 --samples 2
else
  echo "skipped: NaN-logit and detached models ($python cannot import torch, or no MNIST in $data)"
fi

# A real run writes one JSON object per sample; a failed run keeps what was there.
out="$work/run.jsonl"
if "$bin" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.2 --samples 12 --batch 5 --out "$out" > /dev/null \
   && [ "$(wc -l < "$out")" -eq 12 ] && grep -q '"method":"fgsm"' "$out" && grep -q '"name":"fgsm-Linf"' "$out"; then
  pass "attack --out wrote 12 records"
else
  fail "attack --out did not write 12 records"
fi
before=$(sha256sum "$out")
"$bin" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps -1 --out "$out" > /dev/null 2>&1
check "a refused run leaves the earlier output intact" test "$(sha256sum "$out")" = "$before"

# An existing file keeps its mode; a user's own NAME.tmp is left alone; a
# symbolic link is written through (the link stays, its target is replaced).
mkdir "$work/runs"
printf 'my notes\n' > "$work/runs/s.jsonl.tmp"
printf 'old\n' > "$work/runs/s.jsonl"
chmod 640 "$work/runs/s.jsonl"
ln -s s.jsonl "$work/runs/link.jsonl"
"$bin" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.2 --samples 3 --out "$work/runs/s.jsonl" > /dev/null
check "--out keeps the mode of the file it replaces" test "$(stat -c %a "$work/runs/s.jsonl")" = 640
check "--out leaves a user's s.jsonl.tmp alone" test "$(cat "$work/runs/s.jsonl.tmp")" = "my notes"
"$bin" attack --model mnist-mlp-relu --attack fgsm --norm inf --eps 0.2 --samples 2 --out "$work/runs/link.jsonl" > /dev/null
check "--out through a symbolic link keeps the link" test -L "$work/runs/link.jsonl"
check "--out through a symbolic link writes its target" test "$(wc -l < "$work/runs/s.jsonl")" -eq 2
check "--out through a symbolic link keeps the target's mode" test "$(stat -c %a "$work/runs/s.jsonl")" = 640
check "successful runs leave no temporary files" only_files "$work/runs" s.jsonl s.jsonl.tmp link.jsonl

# --help: required options marked, the zoo's models, the data folder and the
# environment variables.
help=$("$bin" attack --help | tr -s ' \n' ' ')  # one line: wrapping aside
for want in "--model arg (required)" "mnist-mlp-relu, mnist-mlp-small-relu, mnist-mlp-softplus, mnist-mlp1-softplus" \
            "BOUNDBENCH_ZOO_DIR" "BOUNDBENCH_DATA_DIR" "default: $data" "--eps arg " "--out arg "; do
  case "$help" in
    *"$want"*) pass "attack --help shows '$want'" ;;
    *) fail "attack --help lacks '$want'" ;;
  esac
done
case "$("$bin" train --help)" in
  *"--out arg (required)"*) pass "train --help marks --out as required" ;;
  *) fail "train --help does not mark --out as required" ;;
esac

echo "cli tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
