#!/usr/bin/env bash
# scripts/plot_results.py on a tiny run folder: every figure appears as PNG
# and PDF at its width, in --out or in the run folder; a missing or malformed
# samples.jsonl is refused with one line on stderr, exit 2, no figure written.
# Exit 77 (skipped) when no python3 has matplotlib; the refusals run first,
# since they need none.
set -u
script="$1"
passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pass() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# Debian's interpreter first (python3-matplotlib), then the one on PATH.
python=""
for candidate in /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null 2>&1; then
    [ -z "$python" ] && python="$candidate"
    if "$candidate" -c "import matplotlib" >/dev/null 2>&1; then
      python="$candidate"
      matplotlib=yes
      break
    fi
  fi
done
[ -n "$python" ] || { echo "SKIP: no python3"; exit 77; }

# One record of samples.jsonl (the fields of harness/records.h).
record() {  # record MODEL NORM SAMPLE METHOD KIND CERTIFIED SUCCESS VALUE SECONDS
  printf '{"model":"%s","model_sha256":"00","dataset":"mnist","norm":"%s","sample":%s,"label":1,"predicted":1,"batch":0,"method":"%s","name":"%s(x=1)","kind":"%s","certified":%s,"success":%s,"value":%s,"seconds":%s,"gradients":3,"seed":0}\n' \
    "$1" "$2" "$3" "$4" "$4" "$5" "$6" "$7" "$8" "$9"
}

run="$work/run"
mkdir -p "$run"
{
  for s in 0 1 2; do
    record tiny-mlp Linf "$s" pgd attack false true "0.0$((s + 4))" 0.2
    record tiny-mlp Linf "$s" fgsm attack false false null 0.01   # never succeeds
    record tiny-mlp Linf "$s" crown-radius bound true true "0.01$s" 0.5
    record tiny-mlp Linf "$s" lipschitz-clever bound false true "0.0$((s + 5))" 1.5  # above the attack
  done
  record tiny-mlp Linf 3 lipschitz-clever bound false false null null     # no value, no time
  # exact-milp: proven on sample 0, a time-out (value null) on sample 1.
  record tiny-mlp Linf 0 exact-milp exact true true 0.035 4.0
  record tiny-mlp Linf 1 exact-milp exact true false null 60.0
  # A second (model, norm): a TorchScript path, one sample, a bound of 0.
  record "/models/my model.pt" L2 0 deepfool attack false true 1.25 0.05
  record "/models/my model.pt" L2 0 lipschitz-global bound true true 0 0.001
  record "/models/my model.pt" L2 0 local-ball-sampled bound false true 0.9 0.3
} >"$run/samples.jsonl"

# refused "what it must say" SAMPLES-FILE-CONTENT|-  (- : no samples.jsonl)
refused() {
  local want="$1" dir="$2" err rc
  err=$("$python" "$script" "$dir" --out "$work/refused-out" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -ne 2 ]; then fail "$dir: exited $rc, expected 2 ($err)"; return; fi
  if [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then fail "$dir: expected one line, got: $err"; return; fi
  if [ -n "$(ls -A "$work/refused-out" 2>/dev/null)" ]; then fail "$dir: refused, but wrote figures"; return; fi
  case "$err" in
    *"$want"*) pass "refused: $err" ;;
    *) fail "$dir: '$err' lacks '$want'" ;;
  esac
}
bad() {  # bad NAME TEXT: a run folder whose samples.jsonl holds TEXT
  mkdir -p "$work/$1"
  printf '%b' "$2" >"$work/$1/samples.jsonl"
  echo "$work/$1"
}
good=$(head -n 1 "$run/samples.jsonl")

refused "$work/nowhere: not a folder" "$work/nowhere"
mkdir -p "$work/empty-run"
refused "$work/empty-run/samples.jsonl: not found" "$work/empty-run"
refused "samples.jsonl:2: not a JSON object" "$(bad not-json "$good\n{\"model\": oops}\n")"
refused "samples.jsonl:3: missing field 'kind'" \
  "$(bad no-kind "$good\n$good\n$(printf '%s' "$good" | sed 's/"kind":"attack",//')\n")"
refused "samples.jsonl:1: 'value' must be a number or null" \
  "$(bad text-value "$(printf '%s' "$good" | sed 's/"value":0.04/"value":"0.04"/')\n")"
refused "samples.jsonl:1: 'sample' must be int" \
  "$(bad float-sample "$(printf '%s' "$good" | sed 's/"sample":0/"sample":0.5/')\n")"
refused "samples.jsonl:1: 'kind' must be attack, bound or exact" \
  "$(bad bad-kind "$(printf '%s' "$good" | sed 's/"kind":"attack"/"kind":"attak"/')\n")"
refused "samples.jsonl:1: not a JSON object" "$(bad array "[1, 2]\n")"
refused "samples.jsonl: no records" "$(bad empty "")"

if [ -z "${matplotlib:-}" ]; then
  echo "plot tests: $passed passed, $failed failed"
  echo "SKIP: matplotlib is missing (Debian: python3-matplotlib); figures not checked"
  [ "$failed" -eq 0 ] || exit 1
  exit 77
fi

# PNG width in pixels (the IHDR chunk).
png_width() {
  "$python" -c 'import struct, sys; d = open(sys.argv[1], "rb").read(24); print(struct.unpack(">I", d[16:20])[0] if d[:8] == b"\x89PNG\r\n\x1a\n" else -1)' "$1"
}

out="$work/figures"
if log=$("$python" "$script" "$run" --out "$out" 2>&1); then
  pass "plotted: $log"
else
  fail "plot_results.py exited non-zero: $log"
fi
for stem in tiny-mlp-Linf my_model.pt-L2; do
  for figure in tightness cdf runtime; do
    for extension in png pdf; do
      file="$out/$figure-$stem.$extension"
      if [ -s "$file" ]; then pass "$figure-$stem.$extension written"; else fail "$file missing or empty"; fi
    done
  done
done
for extension in png pdf; do
  if [ -s "$out/overview.$extension" ]; then pass "overview.$extension written"; else fail "overview.$extension missing"; fi
done
if head -c 5 "$out/cdf-tiny-mlp-Linf.pdf" | grep -q '%PDF-'; then pass "PDF is a PDF"; else fail "cdf-tiny-mlp-Linf.pdf is not a PDF"; fi
# Column widths at 200 dpi: 7 in (two columns) and 3.5 in (one column).
for check in "tightness-tiny-mlp-Linf.png 1400" "cdf-tiny-mlp-Linf.png 1400" "overview.png 1400" \
             "runtime-tiny-mlp-Linf.png 700"; do
  set -- $check
  width=$(png_width "$out/$1")
  if [ "$width" = "$2" ]; then pass "$1 is $2 px wide"; else fail "$1 is $width px wide, expected $2"; fi
done
count=$(ls "$out" | wc -l)
if [ "$count" -eq 14 ]; then pass "14 files, nothing else"; else fail "$count files in $out: $(ls "$out")"; fi
if [ -z "$(ls "$run" | grep -v '^samples.jsonl$')" ]; then pass "--out leaves the run folder alone"; else fail "--out wrote into the run folder"; fi

# Without --out: into the run folder. A torn last line (a run killed while
# appending) is left out, as the harness reads it.
printf '{"model": "tiny-mlp", "norm' >>"$run/samples.jsonl"
if log=$("$python" "$script" "$run" --formats png 2>&1); then
  case "$log" in
    *"ignoring the last line"*) pass "torn last line left out with a note" ;;
    *) fail "torn last line: no note in: $log" ;;
  esac
else
  fail "torn last line refused: $log"
fi
if [ -s "$run/overview.png" ] && [ -s "$run/runtime-tiny-mlp-Linf.png" ] && [ ! -e "$run/overview.pdf" ]; then
  pass "default output: the run folder, --formats png only"
else
  fail "default output: $(ls "$run")"
fi

echo "plot tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
