#!/usr/bin/env bash
# boundbench run end to end: configuration files and command-line
# precedence, a run killed with SIGKILL and resumed (the records of an
# uninterrupted run, none lost or repeated), compare against a committed
# tiny baseline, and the bad-input rules (one line, exit 2, nothing done).
#   tests/test_run.sh BOUNDBENCH_BINARY
set -uo pipefail
bin=$1
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

# Refused: one line naming the problem, exit 2, nothing on stdout.
expect_error() {
  local expected=$1; shift
  local err rc
  err=$("$bin" "$@" 2>&1 >"$work/stdout")
  rc=$?
  if [ $rc -ne 2 ]; then fail "boundbench $*: exit $rc, expected 2 ($err)"; return; fi
  if [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then fail "boundbench $*: not one line: $err"; return; fi
  case "$err" in *"$expected"*) ;; *) fail "boundbench $*: '$err' lacks '$expected'"; return ;; esac
  if [ -s "$work/stdout" ]; then fail "boundbench $*: refused, but printed first"; return; fi
  pass "refused: $expected"
}

data=${BOUNDBENCH_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/boundbench}
if [ ! -f "$data/mnist/t10k-images-idx3-ubyte" ]; then
  echo "skipped: no MNIST in $data (scripts/setup.sh fetches it)"
  exit 77
fi

# 1. Configuration: the file's keys, the command line over them, the
#    embedded quick suite without --config.
cp "$src/tests/data/tiny.ini" "$work/tiny.ini"
config=$("$bin" run --config "$work/tiny.ini" --seed 9 --pgd.steps 12 --print-config)
check "--config sets samples" grep -q '"samples": 6' <<< "$config"
check "the command line overrides the file (seed)" grep -q '"seed": 9' <<< "$config"
check "the command line overrides the file (pgd.steps)" grep -q '"pgd.steps": "12"' <<< "$config"
check "file sections set method options (sampled.draws)" grep -q '"sampled.draws": "32"' <<< "$config"
check "keys absent from the file keep their defaults" grep -q '"clever.batches": "50"' <<< "$config"
quick=$("$bin" run --print-config)
check "without --config: the quick suite" grep -q '"mnist-mlp-softplus"' <<< "$quick"
check "the quick suite's CLEVER settings" grep -q '"clever.batches": "10"' <<< "$quick"

# 2. An uninterrupted run, and one killed with SIGKILL after its first
#    records, then resumed: the same records (times aside).
"$bin" run --config "$work/tiny.ini" --batch 2 --out "$work/whole" --quiet > /dev/null
check "a run writes samples.jsonl, summary.csv and run.json" \
  test -s "$work/whole/samples.jsonl" -a -s "$work/whole/summary.csv" -a -s "$work/whole/run.json"
check "30 records (6 samples x 5 methods)" test "$(wc -l < "$work/whole/samples.jsonl")" -eq 30
"$bin" run --config "$work/tiny.ini" --batch 2 --out "$work/killed" --quiet > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/killed/samples.jsonl" ] && break
  sleep 0.05
done
kill -9 $pid 2> /dev/null
wait $pid 2> /dev/null
before=$(wc -l < "$work/killed/samples.jsonl")
check "the killed run kept its finished batches ($before records)" test "$before" -ge 1 -a "$before" -lt 30
check "the killed run wrote no summary" test ! -e "$work/killed/summary.csv"
printf '{"model":"mnist-mlp-relu","norm":"Li' >> "$work/killed/samples.jsonl"  # torn while appending
"$bin" run --config "$work/tiny.ini" --batch 2 --resume "$work/killed" --quiet > /dev/null
same=$(python3 - "$work/whole/samples.jsonl" "$work/killed/samples.jsonl" <<'PY'
import json, sys
def load(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        r.pop("seconds")
        key = (r["model"], r["norm"], r["method"], r["sample"])
        if key in out:
            return None
        out[key] = r
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
print("same" if a is not None and a == b else "different")
PY
)
check "resumed after SIGKILL and a torn line: the records of an uninterrupted run" test "$same" = same
check "run.json records the resume" grep -q '"resumed"' "$work/killed/run.json"
expect_error "that run has another configuration: seed (5 there, 6 here)" \
  run --config "$work/tiny.ini" --resume "$work/killed" --seed 6
expect_error "the folder is not empty" run --config "$work/tiny.ini" --out "$work/whole"

# 3. compare: the tiny run against the committed tiny baseline (times not
#    compared: they belong to the machine); a planted certified violation fails.
if "$bin" compare "$src/tests/data/baseline-tiny" "$work/whole" --ignore-time > "$work/compare.txt"; then
  pass "the tiny run matches the committed baseline"
else
  fail "the tiny run does not match the committed baseline: $(tail -3 "$work/compare.txt")"
fi
sed 's/^\("mnist-mlp-relu",Linf,local-ball-interval-ibp,bound,true,6,6,[^,]*,[^,]*,[^,]*,[^,]*\),0,/\1,1,/' \
  "$work/whole/summary.csv" > "$work/planted.csv"
"$bin" compare "$work/whole" "$work/planted.csv" --ignore-time > "$work/compare.txt"
check "compare fails on a planted certified violation (exit 1)" test $? -eq 1
check "compare names the violation" grep -qi "violation" "$work/compare.txt"

# 4. Bad input, refused before any work.
expect_error "unknown model 'lenet'" run --models lenet --methods deepfool --out "$work/bad1"
check "a refused run leaves no folder" test ! -e "$work/bad1"
expect_error "--methods: unknown method 'cw'" run --methods deepfool,cw --out "$work/bad2"
expect_error "--norms: unknown norm '3'" run --norms 2,3 --out "$work/bad2"
expect_error "--out $work/none/run: folder $work/none does not exist" run --out "$work/none/run"
expect_error "--out /proc/run: cannot create the folder" run --out /proc/run
expect_error "--resume $work/nothing: no such run folder" run --resume "$work/nothing"
expect_error "--samples: expected an integer, got 'ten'" run --samples ten
expect_error "--config $work/missing.ini: cannot read the file" run --config "$work/missing.ini"
printf 'models = mnist-mlp-relu\nbogus = 1\n' > "$work/bogus.ini"
expect_error "--config $work/bogus.ini: unrecognised option 'bogus'" run --config "$work/bogus.ini"
mkdir -p "$work/empty-data"
expect_error "datasets/fetch.sh" run --models mnist-mlp-relu --methods deepfool --data-dir "$work/empty-data" --out "$work/bad3"

echo "run tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
