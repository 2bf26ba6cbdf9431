#!/usr/bin/env bash
# Runs a BoundBench suite on a Slurm cluster: a job array of N shards
# (scripts/slurm/run_array.sbatch, `boundbench run --shard I/N`, each into its
# own folder) and a job that waits for them, merges them into one run folder
# and draws the figures (scripts/slurm/merge.sbatch).
#
# usage: scripts/slurm/submit.sh --config FILE --shards N --out DIR [options] [-- RUN_OPTION...]
#   --config FILE      the suite (configs/paper.ini)
#   --shards N         shards, one array task each (sbatch --array=0-(N-1))
#   --out DIR          the job folder, new or empty: DIR/shard-I/ (one per shard),
#                      DIR/logs/ (one log per task), DIR/merged/ (the run folder
#                      with its figures)
#   --partition P      sbatch --partition (default: the cluster's default)
#   --time T           time limit of each shard (sbatch --time, e.g. 12:00:00; default: the partition's)
#   --merge-time T     time limit of the merge job (default 1:00:00)
#   --cpus C           CPUs per shard (sbatch --cpus-per-task; default 4); OMP_NUM_THREADS follows it
#   --gpu              one GPU per shard (sbatch --gres=gpu:1) and boundbench --device cuda
#   --batch B          samples per batch (default 20); every shard uses the same
#   --binary PATH      the boundbench program (default: build/boundbench of this clone)
#   --sbatch-option O  one more sbatch option for both jobs (repeatable, e.g. --sbatch-option=--account=lab)
#   --continue         DIR holds an earlier submission whose shards did not all finish (a
#                      time limit, a node failure): submit both jobs again; started shards
#                      resume (keeping their finished batches), finished ones have nothing to do
#   --dry-run          print the two sbatch commands, submit nothing
#   -- RUN_OPTION...   passed to every `boundbench run` (e.g. -- --samples 20 --models mnist-mlp-relu)
# Paths must be visible from the compute nodes (a shared file system); data
# comes from $BOUNDBENCH_DATA_DIR or ~/.cache/boundbench on the nodes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "submit.sh: $*" >&2; exit 2; }

config="" shards="" out="" partition="" time_limit="" merge_time="1:00:00" cpus=4 gpu=0 batch=20
binary="$root/build/boundbench" dry_run=0 continue=0
extra_sbatch=()
run_options=()
value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1: needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --config) value "$@"; config=$2; shift 2 ;;
    --shards) value "$@"; shards=$2; shift 2 ;;
    --out) value "$@"; out=$2; shift 2 ;;
    --partition) value "$@"; partition=$2; shift 2 ;;
    --time) value "$@"; time_limit=$2; shift 2 ;;
    --merge-time) value "$@"; merge_time=$2; shift 2 ;;
    --cpus) value "$@"; cpus=$2; shift 2 ;;
    --gpu) gpu=1; shift ;;
    --batch) value "$@"; batch=$2; shift 2 ;;
    --binary) value "$@"; binary=$2; shift 2 ;;
    --sbatch-option) value "$@"; extra_sbatch+=("$2"); shift 2 ;;
    --sbatch-option=*) extra_sbatch+=("${1#--sbatch-option=}"); shift ;;
    --dry-run) dry_run=1; shift ;;
    --continue) continue=1; shift ;;
    --) shift; run_options=("$@"); break ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (valid: --config, --shards, --out, --partition, --time, --merge-time, --cpus, --gpu, --batch, --binary, --sbatch-option, --continue, --dry-run, --help)" ;;
  esac
done
[ -n "$config" ] || die "--config: no configuration file given"
[ -n "$shards" ] || die "--shards: no number of shards given"
[ -n "$out" ] || die "--out: no job folder given"
[[ "$shards" =~ ^[1-9][0-9]{0,5}$ ]] || die "--shards: expected a positive integer, got '$shards'"
[[ "$cpus" =~ ^[1-9][0-9]{0,4}$ ]] || die "--cpus: expected a positive integer, got '$cpus'"
[ -r "$config" ] && [ -f "$config" ] || die "--config $config: cannot read the file"
[ -x "$binary" ] && [ -f "$binary" ] || die "--binary $binary: no such program (build it: scripts/setup.sh)"
if [ "$continue" -eq 1 ]; then
  [ -d "$out" ] || die "--continue: $out is not a folder"
  [ -d "$out/logs" ] || die "--continue: $out holds no earlier submission (no logs folder)"
  [ ! -e "$out/merged" ] || die "--continue: $out/merged exists: the run was merged already"
elif [ -e "$out" ]; then
  [ -d "$out" ] || die "--out $out: exists and is not a folder"
  [ -z "$(ls -A "$out")" ] || die "--out $out: the folder is not empty (--continue submits its shards again)"
else
  [ -d "$(dirname "$out")" ] || die "--out $out: folder $(dirname "$out") does not exist"
fi
# Absolute paths: the jobs start elsewhere.
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
out_parent=$(cd "$(dirname "$out")" && pwd)
out=$out_parent/$(basename "$out")

run_options=(--batch "$batch" "${run_options[@]}")
[ "$gpu" -eq 0 ] || run_options+=(--device cuda)
# The whole configuration is checked here, before anything is queued (a bad
# key would otherwise fail every task).
if ! check=$("$binary" run --config "$config" --shard "0/$shards" "${run_options[@]}" --print-config 2>&1 >/dev/null); then
  die "the configuration is refused: $check"
fi

common=(--parsable --open-mode=append)  # logs: a --continue adds to them
[ -z "$partition" ] || common+=(--partition="$partition")
common+=("${extra_sbatch[@]}")
array=(sbatch "${common[@]}" --job-name=boundbench --array="0-$((shards - 1))" --cpus-per-task="$cpus"
       --output="$out/logs/shard-%a.log")
[ -z "$time_limit" ] || array+=(--time="$time_limit")
[ "$gpu" -eq 0 ] || array+=(--gres=gpu:1)
array+=("$root/scripts/slurm/run_array.sbatch" "$binary" "$config" "$out" "$shards" "${run_options[@]}")
merge=(sbatch "${common[@]}" --job-name=boundbench-merge --cpus-per-task=1 --time="$merge_time"
       --output="$out/logs/merge.log" --dependency=afterany:ARRAY_JOB
       "$root/scripts/slurm/merge.sbatch" "$binary" "$root" "$out" "$shards")

if [ "$dry_run" -eq 1 ]; then
  printf '%q ' "${array[@]}"; echo
  printf '%q ' "${merge[@]}"; echo
  exit 0
fi
command -v sbatch > /dev/null 2>&1 || die "sbatch not found: run this on a Slurm cluster's login node (or --dry-run)"
mkdir -p "$out/logs"
if ! array_job=$("${array[@]}"); then
  rmdir "$out/logs" 2> /dev/null || true
  die "sbatch refused the shards' job array (see above)"
fi
array_job=${array_job%%;*}
merge=("${merge[@]/ARRAY_JOB/$array_job}")
if ! merge_job=$("${merge[@]}"); then
  scancel "$array_job" 2> /dev/null || true
  die "sbatch refused the merge job (see above); the array $array_job was cancelled"
fi
merge_job=${merge_job%%;*}
echo "submitted: shards job $array_job (array 0-$((shards - 1))), merge job $merge_job (after the shards)"
echo "  watch:   squeue -j $array_job,$merge_job"
echo "  results: $out/merged (summary.csv, figures); logs: $out/logs"
