#!/usr/bin/env bash
# The runtime suite end to end: boundbench_micro registers its benchmarks from
# the method registry (a tiny selection here: one small model, batches 1 and
# 2, Linf, an attack and two bounds), writes Google Benchmark JSON with the
# counters, skips what --max-seconds predicts too long, and boundbench
# compare passes a file against itself, fails a slower or weaker one (exit
# 1) and refuses to compare JSON with a run folder (exit 2).
#   tests/test_micro.sh BOUNDBENCH_MICRO BOUNDBENCH
set -uo pipefail
micro=$1
bin=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
python=$(command -v python3) || { echo "SKIP: no python3"; exit 77; }
data=${BOUNDBENCH_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/boundbench}
if [ ! -f "$data/mnist/t10k-images-idx3-ubyte" ]; then
  echo "skipped: no MNIST in $data (scripts/setup.sh fetches it)"
  exit 77
fi

out="$work/suite.json"
if ! log=$("$micro" --models mnist-mlp-small-relu --batches 1,2 --norms inf \
    --methods deepfool,lipschitz-global,local-ball-interval-crown --set deepfool.max_iter=20 \
    --benchmark_min_time=0.01 --benchmark_out="$out" --benchmark_out_format=json 2>&1); then
  echo "FAIL: boundbench_micro exited non-zero: $log"; exit 1
fi
# Names, counters and the options the methods ran with.
if "$python" - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
names = [b["name"] for b in d["benchmarks"]]
want = [
    "baseline/fwd_bwd/mnist-mlp-small-relu/batch:1/manual_time",
    "baseline/k_gradients/mnist-mlp-small-relu/batch:2/manual_time",
    "attack/deepfool/mnist-mlp-small-relu/Linf/batch:1/iterations:1/manual_time",
    "attack/deepfool/mnist-mlp-small-relu/Linf/batch:2/iterations:1/manual_time",
    "bound/lipschitz-global/mnist-mlp-small-relu/Linf/batch:2/iterations:1/manual_time",
    "bound/local-ball-interval-crown/mnist-mlp-small-relu/Linf/batch:2/iterations:1/manual_time",
]
missing = [w for w in want if w not in names]
assert not missing, f"missing benchmarks {missing} in {names}"
by = {b["name"]: b for b in d["benchmarks"]}
a = by[want[3]]
for key in ("samples_per_s", "gradients_per_s", "gradients_per_sample", "ratio_to_fwd_bwd", "ratio_to_gradients",
            "success_rate", "median_distortion"):
    assert key in a and a[key] > 0, f"attack counter {key}: {a.get(key)}"
assert a["success_rate"] == 1, a["success_rate"]
b = by[want[5]]
for key in ("finite_rate", "median_bound", "ratio_to_fwd_bwd"):
    assert key in b and b[key] > 0, f"bound counter {key}: {b.get(key)}"
# The certified bound is below the attack's distortion (the same two images).
assert b["median_bound"] < a["median_distortion"], (b["median_bound"], a["median_distortion"])
assert d["context"]["suite"] == "registry"
PY
then pass "benchmarks and counters from the registry"; else fail "suite JSON"; fi

if "$bin" compare "$out" "$out" >"$work/same" 2>&1; then pass "compare: a file against itself passes"; else fail "compare self: $(tail -2 "$work/same")"; fi
"$python" - "$out" "$work/slow.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for b in d["benchmarks"]:
    if "deepfool" in b["name"]:
        b["real_time"] *= 2
json.dump(d, open(sys.argv[2], "w"))
PY
"$bin" compare "$out" "$work/slow.json" >"$work/slow" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "REGRESSED: time x2" "$work/slow"; then pass "compare: twice as slow fails (exit 1)"; else fail "compare slow: exit $rc: $(cat "$work/slow")"; fi
if "$bin" compare "$out" "$work/slow.json" --time-tol 1.5 >/dev/null 2>&1; then pass "compare: within --time-tol passes"; else fail "compare --time-tol 1.5"; fi
mkdir -p "$work/run"
err=$("$bin" compare "$out" "$work/run" 2>&1 >/dev/null)
rc=$?
case "$rc:$err" in
  2:*"is a runtime-suite JSON file but"*) pass "compare: JSON against a run folder refused" ;;
  *) fail "compare JSON vs folder: exit $rc: $err" ;;
esac

# --max-seconds: batch 2 predicted from batch 1 beyond a tiny limit is skipped, saying so.
if "$micro" --models mnist-mlp-small-relu --batches 1,2 --norms inf --methods lipschitz-global \
    --max-seconds 1e-9 --benchmark_out="$work/skip.json" --benchmark_out_format=json >/dev/null 2>&1 &&
   "$python" - "$work/skip.json" <<'PY'
import json, sys
by = {b["name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]}
one = by["bound/lipschitz-global/mnist-mlp-small-relu/Linf/batch:1/iterations:1/manual_time"]
two = by["bound/lipschitz-global/mnist-mlp-small-relu/Linf/batch:2/iterations:1/manual_time"]
assert not one.get("error_occurred"), one
assert two.get("error_occurred") and "predicted at batch 2" in two["error_message"], two
PY
then pass "--max-seconds skips with the estimate"; else fail "--max-seconds"; fi

# Bad options: exit 2, one line naming the option.
for case_ in "--batches 16,1|--batches: sizes must ascend" "--methods cw|unknown method 'cw'" \
             "--set pgd.stepz=3|pgd.stepz" "--suite fast|--suite: unknown 'fast'"; do
  args=${case_%%|*}
  want=${case_#*|}
  # shellcheck disable=SC2086
  err=$("$micro" --models mnist-mlp-small-relu $args 2>&1 >/dev/null)
  rc=$?
  case "$rc:$err" in
    2:*"$want"*) pass "refused: $want" ;;
    *) fail "boundbench_micro $args: exit $rc: $err" ;;
  esac
done

echo "micro suite tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
