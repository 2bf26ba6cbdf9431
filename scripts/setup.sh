#!/usr/bin/env bash
# One-command set-up, safe to run again (fast when everything is in place):
#   1. the system packages (Debian/Ubuntu, through apt),
#   2. the build (CMake + Ninja into build/, ccache and a precompiled header),
#   3. the data sets (datasets/fetch.sh, checksums verified) into the cache.
# usage: scripts/setup.sh [--no-data] [--tests]
#   --tests                also the packages only the tests need: slurm-wlm and
#                          munge, for the Slurm test (tests/test_slurm.sh starts
#                          its own daemons from a private configuration; this
#                          script configures none)
#   BOUNDBENCH_BUILD_DIR   build folder (default: build)
#   CMAKE_PREFIX_PATH      another LibTorch (e.g. a CUDA build) instead of Debian's
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BOUNDBENCH_BUILD_DIR:-$root/build}
fetch_data=1
for_tests=0
for arg in "$@"; do
  case "$arg" in
    --no-data) fetch_data=0 ;;
    --tests) for_tests=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (valid: --no-data, --tests, --help)" >&2; exit 2 ;;
  esac
done

# 1. System packages. OpenBLAS replaces Debian's reference BLAS behind
# LibTorch (about 4x faster linear layers); its OpenMP build, which
# BoundBench's programs load through their RPATH (see CMakeLists.txt), shares
# LibTorch's OpenMP threads instead of spinning threads of its own;
# python3-torch exports the TorchScript test models; python3-matplotlib draws
# the figures (scripts/plot_results.py); dataset-fashion-mnist is the third
# data set; COIN-OR CBC (found through pkg-config) solves the exact MILP.
packages=(
  build-essential cmake ninja-build ccache git curl ca-certificates
  libtorch-dev libopenblas0-pthread libopenblas0-openmp python3-torch python3-matplotlib
  libboost-program-options-dev libfmt-dev nlohmann-json3-dev libpng-dev
  coinor-libcbc-dev pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist
)
command -v npm > /dev/null 2>&1 || packages+=(npm)
if [ "$for_tests" -eq 1 ]; then
  packages+=(slurm-wlm munge)
fi
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2> /dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get > /dev/null 2>&1; then
    echo "setup.sh: not a Debian/Ubuntu system; install these yourself: ${missing[*]}" >&2
    exit 2
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  echo "setup.sh: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

# 2. The build.
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" -j "$(nproc)"

# 3. The data.
if [ "$fetch_data" -eq 1 ]; then
  "$root/datasets/fetch.sh" mnist fashion-mnist cifar10
fi
