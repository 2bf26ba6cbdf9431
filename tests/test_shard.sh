#!/usr/bin/env bash
# boundbench run --shard I/N and boundbench merge end to end: the tiny suite
# split into 3 shards (one of them resumed after a kill) and merged equals the
# unsharded run record for record and line for line (times aside): a shard
# keeps the unsharded run's batches (--batch 2 for both), so the records are
# bit for bit the same, not only equal to float rounding. A shard with no
# work is a valid folder. Bad input to merge (a shard given twice, a missing
# shard, shards of another configuration, batch or split, an unfinished or
# torn shard, a folder that is not a shard, an output folder in use) is one
# line naming the folder, exit 2, nothing on stdout and nothing written; the
# shards of another configuration, batch or split are real shards with their
# run.json edited (running them would double the test's time).
#   tests/test_shard.sh BOUNDBENCH_BINARY
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

# Refused: one line naming the problem, exit 2, nothing on stdout, and no
# output folder (nor a temporary one) left in $work/out-parent.
mkdir -p "$work/out-parent"
expect_error() {
  local expected=$1; shift
  local err rc
  err=$("$bin" "$@" 2>&1 >"$work/stdout")
  rc=$?
  if [ $rc -ne 2 ]; then fail "boundbench $*: exit $rc, expected 2 ($err)"; return; fi
  if [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then fail "boundbench $*: not one line: $err"; return; fi
  case "$err" in *"$expected"*) ;; *) fail "boundbench $*: '$err' lacks '$expected'"; return ;; esac
  if [ -s "$work/stdout" ]; then fail "boundbench $*: refused, but printed first"; return; fi
  if [ -n "$(ls -A "$work/out-parent")" ]; then
    fail "boundbench $*: refused, but left $(ls -A "$work/out-parent")"; return
  fi
  pass "refused: $expected"
}

data=${BOUNDBENCH_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/boundbench}
if [ ! -f "$data/mnist/t10k-images-idx3-ubyte" ]; then
  echo "skipped: no MNIST in $data (scripts/setup.sh fetches it)"
  exit 77
fi

# Records without their times, in file order: identical lists = the same
# records in the same order. "same" or what differs.
compare_records() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def load(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        r.pop("seconds")
        out.append(r)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
if a == b:
    print("same")
elif sorted(map(json.dumps, a)) == sorted(map(json.dumps, b)):
    print("the same records in another order")
else:
    print(f"different: {len(a)} and {len(b)} records, first difference at line "
          f"{next((i + 1 for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)) + 1)}")
PY
}
# summary.csv without the median_seconds column.
summary_without_times() {
  python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
drop = rows[0].index("median_seconds")
for r in rows:
    print(r[:drop] + r[drop + 1:])' "$1"
}

# 1. The tiny suite on both norms, 4 samples in batches of 2: 4 units
#    (L2 and Linf, samples 1-2 and 3-4), whole and in 3 shards (units 0 and
#    3, unit 1, unit 2).
cp "$src/tests/data/tiny.ini" "$work/tiny.ini"
base=(run --config "$work/tiny.ini" --norms 2,inf --samples 4 --quiet)
run=("${base[@]}" --batch 2)
"$bin" "${run[@]}" --out "$work/whole" > /dev/null
check "the unsharded run: 40 records" test "$(wc -l < "$work/whole/samples.jsonl")" -eq 40
for i in 0 1 2; do
  "$bin" "${run[@]}" --shard "$i/3" --out "$work/s$i" > /dev/null 2> "$work/s$i.err" \
    || fail "shard $i/3 failed: $(cat "$work/s$i.err")"
done
counts=$(for i in 0 1 2; do wc -l < "$work/s$i/samples.jsonl"; done | tr '\n' ' ')
check "shards of 2, 1 and 1 batches: 20, 10 and 10 records (got $counts)" test "$counts" = "20 10 10 "
check "run.json records the shard" \
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["shard"]; sys.exit(not (s["index"]==0 and s["count"]==3 and s["batch"]==2 and s["units"]==2 and s["total_units"]==4 and len(s["selected"]["mnist-mlp-relu"])==4))' "$work/s0/run.json"

# Shard 0 killed after 3 records (and half a line), then resumed.
cp -r "$work/s0" "$work/s0-killed"
head -3 "$work/s0/samples.jsonl" > "$work/s0-killed/samples.jsonl"
printf '{"model":"mnist-mlp-relu","norm":"L' >> "$work/s0-killed/samples.jsonl"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); del r["finished"]; json.dump(r, open(sys.argv[1], "w"))' \
  "$work/s0-killed/run.json"
rm "$work/s0-killed/summary.csv"
expect_error "that run is shard 0/3 (give --shard 0/3 again)" "${run[@]}" --resume "$work/s0-killed"
expect_error "that run is shard 0/3, not 2/3" "${run[@]}" --resume "$work/s0-killed" --shard 2/3
expect_error "shard 0/3 was cut in batches of 2 (give --batch 2 again, not 3)" \
  "${base[@]}" --resume "$work/s0-killed" --shard 0/3 --batch 3
expect_error "that run is not a shard (drop --shard 1/3)" "${run[@]}" --resume "$work/whole" --shard 1/3
expect_error "shard 0/3 did not finish" merge "$work/s0-killed" "$work/s1" "$work/s2" --out "$work/out-parent/m"
"$bin" "${run[@]}" --resume "$work/s0-killed" --shard 0/3 > /dev/null
check "the resumed shard has the shard's records" \
  test "$(compare_records "$work/s0/samples.jsonl" "$work/s0-killed/samples.jsonl")" != different

# 2. Merged: the unsharded run's files.
"$bin" merge "$work/s2" "$work/s0-killed" "$work/s1" --out "$work/merged" > "$work/merge.out"
check "merge exits 0 and reports the shards" grep -q "40 records from 3 shards" "$work/merge.out"
same=$(compare_records "$work/whole/samples.jsonl" "$work/merged/samples.jsonl")
check "merged samples.jsonl = the unsharded run's, line for line ($same)" test "$same" = same
check "merged summary.csv = the unsharded run's (times aside)" \
  diff <(summary_without_times "$work/whole/summary.csv") <(summary_without_times "$work/merged/summary.csv")
check "merged run.json: the configuration, no shard, every shard listed, 40 records" \
  python3 -c '
import json, sys
m, w = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ok = (m["config"] == w["config"] and "shard" not in m and m["records"] == 40 and m["models"] == w["models"]
      and [s["shard"] for s in m["merged"]["shards"]] == ["0/3", "1/3", "2/3"]
      and "resumed" in m["merged"]["shards"][0] and m["finished"] >= m["started"] and m["skipped"] == w["skipped"])
sys.exit(not ok)' "$work/merged/run.json" "$work/whole/run.json"
check "compare finds no regression between the unsharded and the merged run" \
  "$bin" compare "$work/whole" "$work/merged" --ignore-time > /dev/null
"$bin" "${run[@]}" --resume "$work/merged" > "$work/resume-merged.out"
check "the merged folder is an ordinary run folder (resume: nothing left to do)" \
  grep -q "40 records (0 new)" "$work/resume-merged.out"

# 3. More shards than units: shard 4/5 has no work and still makes a valid folder.
"$bin" "${run[@]}" --shard 4/5 --out "$work/empty" > /dev/null
check "an empty shard: run.json finished, samples.jsonl empty, summary.csv a header" \
  test -e "$work/empty/samples.jsonl" -a ! -s "$work/empty/samples.jsonl" -a "$(wc -l < "$work/empty/summary.csv")" -eq 1
check "an empty shard's run.json says 0 of 4 units" \
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(not (r["shard"]["units"]==0 and r["shard"]["total_units"]==4 and r["records"]==0 and "finished" in r))' "$work/empty/run.json"

# 4. Bad input: nothing written, one line naming the folder.
out=(--out "$work/out-parent/m")
# A copy of a shard with run.json edited by a Python expression.
edited() {  # edited SOURCE COPY 'r["config"]["seed"] = 6'
  cp -r "$1" "$2"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); $3; json.dump(r, open(sys.argv[1], 'w'))" "$2/run.json"
}
expect_error "$work/s0 and $work/s0 are both shard 0/3" merge "$work/s0" "$work/s0" "$work/s1" "$work/s2" "${out[@]}"
expect_error "shard 1/3 is missing (given: 0/3, 2/3)" merge "$work/s0" "$work/s2" "${out[@]}"
expect_error "shards 1/3, 2/3 are missing (given: 0/3)" merge "$work/s0" "${out[@]}"
edited "$work/s2" "$work/s2-seed6" 'r["config"]["seed"] = 6; r["config"]["options"]["pgd.steps"] = "11"'
expect_error "$work/s0 and $work/s2-seed6 are shards of different configurations: options.pgd.steps (\"10\" in $work/s0, \"11\" in $work/s2-seed6); seed (5 in $work/s0, 6 in $work/s2-seed6)" \
  merge "$work/s0" "$work/s1" "$work/s2-seed6" "${out[@]}"
edited "$work/s2" "$work/s2-batch3" 'r["shard"]["batch"] = 3'
expect_error "$work/s0 (shard 0/3) was cut in batches of 2 and $work/s2-batch3 (shard 2/3) in batches of 3" \
  merge "$work/s0" "$work/s1" "$work/s2-batch3" "${out[@]}"
edited "$work/s1" "$work/h1" 'r["shard"]["count"] = 2'
expect_error "$work/s0 is shard 0/3 and $work/h1 is shard 1/2" merge "$work/s0" "$work/h1" "$work/s2" "${out[@]}"
cp -r "$work/s2" "$work/s2-torn"
printf '{"model":"mnist' >> "$work/s2-torn/samples.jsonl"
expect_error "$work/s2-torn/samples.jsonl: the last line is torn" merge "$work/s0" "$work/s1" "$work/s2-torn" "${out[@]}"
cp -r "$work/s2" "$work/s2-short"
head -7 "$work/s2/samples.jsonl" > "$work/s2-short/samples.jsonl"
expect_error "$work/s2-short/samples.jsonl: 7 records, but run.json says 10" merge "$work/s0" "$work/s1" "$work/s2-short" "${out[@]}"
edited "$work/s2" "$work/s2-foreign" 'r["records"] = 11'
head -1 "$work/s0/samples.jsonl" >> "$work/s2-foreign/samples.jsonl"
expect_error "$work/s2-foreign/samples.jsonl: line 11: mnist-mlp-relu L2 sample" merge "$work/s0" "$work/s1" "$work/s2-foreign" "${out[@]}"
expect_error "belongs to shard 0/3, not 2/3" merge "$work/s0" "$work/s1" "$work/s2-foreign" "${out[@]}"
expect_error "$work/whole: not a shard folder" merge "$work/whole" "${out[@]}"
expect_error "$work/nothing: no such folder" merge "$work/nothing" "${out[@]}"
expect_error "merge: no shard folders given" merge "${out[@]}"
expect_error "the option '--out' is required" merge "$work/s0"
mkdir -p "$work/taken" && touch "$work/taken/x"
expect_error "--out $work/taken: the folder is not empty" merge "$work/s0" "$work/s1" "$work/s2" --out "$work/taken"
expect_error "--out $work/out-parent/none/m: folder $work/out-parent/none does not exist" \
  merge "$work/s0" "$work/s1" "$work/s2" --out "$work/out-parent/none/m"
expect_error "--shard: expected I/N" run --config "$work/tiny.ini" --shard 1 --out "$work/out-parent/r"
expect_error "--shard 4/4: shards are counted from 0: I must be below N (0 to 3)" run --config "$work/tiny.ini" --shard 4/4 --out "$work/out-parent/r"
expect_error "--shard 0/0: the number of shards must be at least 1" run --config "$work/tiny.ini" --shard 0/0 --out "$work/out-parent/r"
# An empty output folder is taken (and replaced by the merged one).
mkdir "$work/out-parent/empty"
if "$bin" merge "$work/s0" "$work/s1" "$work/s2" --out "$work/out-parent/empty" --quiet > /dev/null; then
  check "merge into an existing empty folder" test -s "$work/out-parent/empty/samples.jsonl"
else
  fail "merge into an existing empty folder"
fi

echo "shard tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
