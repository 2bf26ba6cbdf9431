#!/usr/bin/env bash
# Offline checks of datasets/fetch.sh: a checksum mismatch is refused and leaves
# no data behind, good files already in place are never deleted, bad arguments
# are rejected. Needs no network; takes a few seconds.
#
# Usage: bash tests/test_fetch.sh PATH/TO/datasets/fetch.sh
set -uo pipefail

FETCH=${1:-}
if [[ -z $FETCH || ! -f $FETCH ]]; then
  echo "usage: bash $0 PATH/TO/datasets/fetch.sh (got '${FETCH}')" >&2
  exit 2
fi
FETCH=$(cd -- "$(dirname -- "$FETCH")" && pwd)/$(basename -- "$FETCH")
CHECKSUMS=$(dirname -- "$FETCH")/checksums.sha256
if [[ ! -f $CHECKSUMS ]]; then
  echo "test_fetch: $CHECKSUMS not found (it must sit next to fetch.sh)" >&2
  exit 2
fi
DEBIAN_FASHION_DIR=/usr/share/datasets/fashion-mnist

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_fetch.XXXXXX") || exit 2
trap 'rm -rf -- "$TMP"' EXIT

passed=0
failed=0
skipped=0

pass() {
  echo "  ok: $1"
  passed=$((passed + 1))
}

# fail DESCRIPTION: also shows what the last fetch.sh run printed.
fail() {
  echo "  FAIL: $1"
  echo "    last run: fetch.sh ${LAST_ARGS[*]} (exit $RC)"
  sed 's/^/    stdout| /' "$TMP/out"
  sed 's/^/    stderr| /' "$TMP/err"
  failed=$((failed + 1))
}

# expect DESCRIPTION COMMAND...: passes when COMMAND succeeds.
expect() {
  local description=$1
  shift
  if "$@"; then pass "$description"; else fail "$description"; fi
}

# run_fetch ARGS...: runs fetch.sh isolated from the caller's environment (its
# default data dir, mirror and converter) plus EXTRA_ENV; sets RC and ELAPSED_MS,
# output in $TMP/out and $TMP/err.
EXTRA_ENV=()
LAST_ARGS=()
RC=0
run_fetch() {
  local start
  LAST_ARGS=("$@")
  start=$(date +%s%N)
  env -u BOUNDBENCH_DATA_DIR -u BOUNDBENCH_DATA_MIRROR -u BOUNDBENCH_CIFAR_CONVERTER \
    -u XDG_CACHE_HOME HOME="$TMP/home" "${EXTRA_ENV[@]}" \
    bash "$FETCH" "$@" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  ELAPSED_MS=$((($(date +%s%N) - start) / 1000000))
}

failed_run() { ((RC != 0)); }
succeeded() { ((RC == 0)); }

# stderr_line_has TEXT...: one stderr line contains every TEXT.
stderr_line_has() {
  local line text
  while IFS= read -r line; do
    for text; do [[ $line == *"$text"* ]] || continue 2; done
    return 0
  done <"$TMP/err"
  return 1
}

stdout_has() { grep -qF -- "$1" "$TMP/out"; }
stderr_is_one_line() { [[ $(wc -l <"$TMP/err") -eq 1 ]]; }
no_files_under() { [[ ! -e $1 || -z $(find "$1" -type f -print -quit) ]]; }

# all_match DATA_DIR DATASET: the data set's files there match checksums.sha256.
all_match() {
  (cd -- "$1" && grep -F "  $2/" "$CHECKSUMS" | sha256sum --check --quiet --strict - >/dev/null 2>&1)
}

expected_sha() {
  local sha
  sha=$(grep -F "  $1" "$CHECKSUMS" | cut -d' ' -f1)
  [[ -n $sha ]] || { echo "test_fetch: no checksum for $1 in $CHECKSUMS" >&2; exit 2; }
  echo "$sha"
}

junk() { head -c "$1" /dev/zero | tr '\0' 'x'; }

echo "fetch tests: $FETCH"

# --- (a) a corrupted mirror is refused and leaves nothing behind ---------------
echo "(a) mirror with a corrupted mnist/t10k-labels-idx1-ubyte, --routes mirror"
mirror=$TMP/bad-mirror
mkdir -p "$mirror/mnist"
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte; do
  junk 100 >"$mirror/mnist/$name"
done
junk 10008 >"$mirror/mnist/t10k-labels-idx1-ubyte"  # right size, wrong bytes

data=$TMP/data-a
run_fetch --data-dir "$data" --mirror "$mirror" --routes mirror mnist
expect "exits non-zero" failed_run
expect "names the file and the sha256 mismatch (expected vs found)" \
  stderr_line_has t10k-labels-idx1-ubyte "sha256 mismatch" \
  "expected $(expected_sha mnist/t10k-labels-idx1-ubyte)" "found "
expect "says mnist could not be fetched" stderr_line_has "error: mnist"
expect "leaves no files under the data dir" no_files_under "$data"

EXTRA_ENV=(BOUNDBENCH_DATA_MIRROR="$mirror")
run_fetch --data-dir "$data" --routes mirror --quiet mnist
EXTRA_ENV=()
expect "same through BOUNDBENCH_DATA_MIRROR with --quiet: exits non-zero" failed_run
expect "same with --quiet: still names the file" stderr_line_has t10k-labels-idx1-ubyte "sha256 mismatch"
expect "same with --quiet: leaves no files under the data dir" no_files_under "$data"

data=$TMP/data-a2
mkdir -p "$data/mnist"
junk 1234 >"$data/mnist/train-images-idx3-ubyte"
cp "$data/mnist/train-images-idx3-ubyte" "$TMP/kept"
run_fetch --data-dir "$data" --mirror "$mirror" --routes existing,mirror mnist
expect "with a file already in place: exits non-zero" failed_run
expect "with a file already in place: leaves it untouched" cmp -s "$TMP/kept" "$data/mnist/train-images-idx3-ubyte"
expect "with a file already in place: adds no other file" \
  test "$(find "$data" -type f | wc -l)" -eq 1

# --- (b) good files in place are kept -------------------------------------------
if [[ -d $DEBIAN_FASHION_DIR ]]; then
  echo "(b) fashion-mnist from $DEBIAN_FASHION_DIR, then the existing route"
  data=$TMP/data-b
  run_fetch --data-dir "$data" --routes debian fashion-mnist
  expect "--routes debian succeeds" succeeded
  expect "reports the debian route" stdout_has "fashion-mnist: ok via debian"
  expect "the four files match checksums.sha256" all_match "$data" fashion-mnist

  run_fetch --data-dir "$data" --routes existing fashion-mnist
  expect "--routes existing succeeds" succeeded
  expect "reports the existing route" stdout_has "fashion-mnist: ok via existing"
  expect "--routes existing is quick (${ELAPSED_MS} ms < 10 s)" test "$ELAPSED_MS" -lt 10000

  run_fetch --data-dir "$data" --mirror "$mirror" --routes mirror fashion-mnist
  expect "a failing fetch (mirror without fashion-mnist) exits non-zero" failed_run
  expect "a failing fetch keeps the good files in place" all_match "$data" fashion-mnist

  junk 10008 >"$data/fashion-mnist/t10k-labels-idx1-ubyte"
  run_fetch --data-dir "$data" --routes existing fashion-mnist
  expect "after corrupting t10k-labels, --routes existing fails" failed_run
  expect "names the corrupted file and the sha256 mismatch" \
    stderr_line_has fashion-mnist/t10k-labels-idx1-ubyte "sha256 mismatch"
  expect "the other files are still in place" test -f "$data/fashion-mnist/train-images-idx3-ubyte" \
    -a -f "$data/fashion-mnist/train-labels-idx1-ubyte" -a -f "$data/fashion-mnist/t10k-images-idx3-ubyte"

  EXTRA_ENV=(BOUNDBENCH_DATA_DIR="$data")
  run_fetch --routes existing,debian --quiet fashion-mnist
  EXTRA_ENV=()
  expect "BOUNDBENCH_DATA_DIR + existing,debian repairs it" all_match "$data" fashion-mnist
  expect "--quiet prints only the result line" test "$(cat "$TMP/out" "$TMP/err" | wc -l)" -eq 1
else
  echo "(b) skipped: $DEBIAN_FASHION_DIR not found (apt-get install dataset-fashion-mnist)"
  skipped=$((skipped + 1))
fi

# --- (c) bad arguments ------------------------------------------------------------
echo "(c) unknown data set and unknown route"
data=$TMP/data-c
run_fetch --data-dir "$data" mnist svhn
expect "unknown data set: exits non-zero" failed_run
expect "unknown data set: one line naming it and the valid names" \
  stderr_line_has "svhn" mnist fashion-mnist cifar10
expect "unknown data set: the error is a single line" stderr_is_one_line

run_fetch --data-dir "$data" --routes existing,web mnist
expect "unknown route: exits non-zero" failed_run
expect "unknown route: one line naming it and the valid routes" \
  stderr_line_has "web" existing mirror canonical npm debian
expect "unknown route: the error is a single line" stderr_is_one_line
expect "bad arguments create no data directory" test ! -e "$data"

summary="fetch tests: $passed passed, $failed failed"
((skipped == 0)) || summary+=" ($skipped group skipped)"
echo "$summary"
((failed == 0))
