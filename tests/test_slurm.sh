#!/usr/bin/env bash
# scripts/slurm/ on a real Slurm: a one-node cluster of Debian's slurm-wlm and
# munge, started here as the current user with its configuration, key,
# sockets, state and logs in a temporary folder (nothing of the machine's own
# /etc/slurm or /etc/munge is read or touched). scripts/slurm/submit.sh
# submits the tiny suite in 3 shards and the merge job; the test waits for
# both (10 minutes at most), then checks that the merged run equals an
# unsharded run record for record and line for line (times aside), and that
# the merge job drew the figures; then cuts a shard short and checks that
# `submit.sh --continue` resumes it and merges again. The daemons it started,
# and any job process left in its folder, are stopped on every exit path
# (trap).
#
# Installs nothing: `scripts/setup.sh --tests` installs slurm-wlm and munge.
# When Slurm cannot run here (not installed, a daemon refuses to start, the
# node never comes up, a trivial probe job does not complete), it says why
# and exits 77 (ctest: skipped). It never stands in for sbatch.
#   tests/test_slurm.sh BOUNDBENCH_BINARY
set -uo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")  # absolute: the jobs start elsewhere
src=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
skip() { echo "skipped: $*"; exit 77; }

# 0. submit.sh without a cluster: --dry-run spells the two sbatch commands.
dry=$("$src/scripts/slurm/submit.sh" --config "$src/tests/data/tiny.ini" --shards 5 --out /tmp/bb-dry-run-job \
        --partition gpu --time 2:00:00 --cpus 8 --gpu --binary "$bin" --dry-run 2>&1)
check "submit.sh --dry-run: a 5-task array on partition gpu, 8 CPUs, one GPU, --device cuda" \
  grep -q -- "--partition=gpu.*--array=0-4 --cpus-per-task=8 .*--time=2:00:00 --gres=gpu:1 .*run_array.sbatch .* --device cuda" <<< "$dry"
check "submit.sh --dry-run: the merge job after the array" grep -q -- "--dependency=afterany:ARRAY_JOB .*merge.sbatch" <<< "$dry"
err=$("$src/scripts/slurm/submit.sh" --config "$src/tests/data/tiny.ini" --shards 0 --out /tmp/x --binary "$bin" 2>&1)
check "submit.sh refuses --shards 0 (exit 2, one line)" \
  test $? -eq 2 -a "$(printf '%s\n' "$err" | wc -l)" -eq 1 -a "${err#*--shards: expected a positive integer}" != "$err"
err=$("$src/scripts/slurm/submit.sh" --config "$src/tests/data/tiny.ini" --shards 2 --out /tmp/x --binary "$bin" \
        --dry-run -- --pgd.stpes 3 2>&1)
check "submit.sh checks the configuration before queuing anything" \
  test $? -eq 2 -a "${err#*unrecognised option}" != "$err"

# 1. What the test needs.
data=${BOUNDBENCH_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/boundbench}
[ -f "$data/mnist/t10k-images-idx3-ubyte" ] || skip "no MNIST in $data (scripts/setup.sh fetches it)"
PATH=$PATH:/usr/sbin:/sbin
for program in munged mungekey slurmctld slurmd slurmstepd sbatch squeue sinfo scontrol scancel; do
  command -v "$program" > /dev/null 2>&1 ||
    skip "$program not found: Slurm is not installed here (scripts/setup.sh --tests installs slurm-wlm and munge)"
done

# 2. The cluster: munge, slurmctld and slurmd of this user, in a private folder.
# /tmp, not $TMPDIR: munge's socket path must stay short, and every folder
# above the socket must be searchable by all (munged checks).
tmp=$(mktemp -d /tmp/bb-slurm.XXXXXX)
pids=()
stop_everything() {
  local rc=$?
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
    # Our private cluster has only our jobs.
    local jobs
    jobs=$(timeout 10 squeue -h -o %A 2> /dev/null | sort -u | tr '\n' ' ')
    [ -z "$jobs" ] || timeout 10 scancel $jobs 2> /dev/null
    sleep 1
  fi
  local pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do  # slurmd, slurmctld, munged
    kill "${pids[i]}" 2> /dev/null
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
  done
  # Job processes (slurmstepd, a shard's boundbench) outlive slurmd: ours are
  # the processes with their working folder or an open file in $tmp.
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$pid" != $$ ] || continue
    if [[ "$(readlink "$proc/cwd" 2> /dev/null)" == "$tmp"* ]] ||
       ls -l "$proc/fd" 2> /dev/null | grep -q -- "-> $tmp/"; then
      kill -9 "$pid" 2> /dev/null
    fi
  done
  rm -rf "$tmp"
  exit $rc
}
trap stop_everything EXIT
trap 'exit 130' INT TERM
chmod 0711 "$tmp"
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/log" "$tmp/work"
chmod 0711 "$tmp/munge"
mungekey --create --keyfile="$tmp/munge/munge.key" 2> "$tmp/log/mungekey.log" ||
  skip "mungekey cannot create a key: $(tail -1 "$tmp/log/mungekey.log")"
chmod 0400 "$tmp/munge/munge.key"
socket=$tmp/munge/munge.socket
munged --foreground --force --socket="$socket" --key-file="$tmp/munge/munge.key" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/log/munged.log" --seed-file="$tmp/munge/munged.seed" \
  > "$tmp/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || skip "munged did not start: $(grep -h -i error "$tmp/log/munged.out" "$tmp/log/munged.log" 2> /dev/null | tail -1)"

user=$(id -un)
node=$(hostname -s)
# Two free TCP ports on the loopback interface.
read -r ctld_port d_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
cat > "$tmp/slurm.conf" <<EOF
# A one-node cluster for tests/test_slurm.sh: no cgroups, no accounting.
ClusterName=bbtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=bbtest Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
# Nothing constrained through cgroups (the plugins above use none); the file
# keeps slurmd from reading another one.
cat > "$tmp/cgroup.conf" <<EOF
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
# Only our cluster: no Slurm variables of an enclosing job.
for variable in $(compgen -v SLURM_); do unset "$variable"; done
export SLURM_CONF=$tmp/slurm.conf
slurmctld -D -i > "$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N "$node" > "$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 1 60); do
  state=$(sinfo -h -n "$node" -o %T 2> /dev/null)
  [ "$state" = idle ] && break
  sleep 0.5
done
why() {  # the last error of a daemon's logs
  grep -h -i -E "error|fatal" "$tmp/log/$1".* 2> /dev/null | grep -v -i -E "pmix|MPI|state file|Trying backup" | tail -1
}
for i in 1 2; do
  kill -0 "${pids[i]}" 2> /dev/null ||
    skip "$([ "$i" -eq 1 ] && echo slurmctld || echo slurmd) did not start as $user: $(why "$([ "$i" -eq 1 ] && echo slurmctld || echo slurmd)")"
done
[ "$state" = idle ] || skip "the node did not come up (state '${state:-unknown}'): $(why slurmd) $(why slurmctld)"

# A trivial job first: whether this machine can run Slurm jobs at all.
probe=$(sbatch --parsable --chdir="$tmp/work" --output="$tmp/work/probe.out" --wrap "echo probe-ran" 2>&1) ||
  skip "sbatch refused a trivial job: $probe"
for _ in $(seq 1 60); do
  [ -z "$(squeue -h -j "$probe" 2> /dev/null)" ] && break
  sleep 0.5
done
grep -q probe-ran "$tmp/work/probe.out" 2> /dev/null ||
  skip "Slurm cannot run a job here: a trivial job did not complete ($(why slurmd))"
pass "a one-node Slurm cluster runs jobs here (slurm $(sinfo -V | cut -d' ' -f2), $(nproc) CPUs, as $user)"

# 3. The tiny suite on both norms, 4 samples in batches of 2 (4 units), in 3
#    shards through submit.sh.
cp "$src/tests/data/tiny.ini" "$tmp/work/tiny.ini"
job=$tmp/work/job
submit() {  # submit [--continue]: sets array_job and merge_job
  local submitted
  if ! submitted=$(cd "$tmp/work" && "$src/scripts/slurm/submit.sh" --config tiny.ini --shards 3 --out job \
                     --partition bbtest --time 10 --merge-time 10 --cpus 1 --batch 2 --binary "$bin" "$@" \
                     -- --norms 2,inf --samples 4 2>&1); then
    fail "submit.sh $*: $submitted"
    exit 1
  fi
  echo "$submitted"
  array_job=$(sed -n 's/^submitted: shards job \([0-9]*\) .*/\1/p' <<< "$submitted")
  merge_job=$(sed -n 's/.*merge job \([0-9]*\) .*/\1/p' <<< "$submitted")
  check "submit.sh $* names the array and the merge job" test -n "$array_job" -a -n "$merge_job"
}
wait_for_jobs() {
  local started gone=0
  started=$(date +%s)
  for _ in $(seq 1 1200); do
    if [ -z "$(squeue -h -j "$array_job,$merge_job" 2> /dev/null)" ]; then gone=1; break; fi
    sleep 0.5
  done
  check "the jobs finished within 10 minutes ($(($(date +%s) - started)) s)" test "$gone" -eq 1
}
job_state() {  # job_state JOB
  scontrol show job "$1" 2> /dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1
}
# "same", or what differs between two samples.jsonl (times aside).
compare_records() {
  python3 - "$1" "$2" 2>&1 <<'PY'
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
else:
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    keys = sorted({k for x, y in diff for k in x if x.get(k) != y.get(k)})
    print(f"different: {len(a)} and {len(b)} records, {len(diff)} differ (in {', '.join(keys)})")
PY
}

submit
# Meanwhile, the same suite unsharded, outside Slurm, with the shards' one
# thread (run_array.sbatch sets OMP_NUM_THREADS to --cpus): another number of
# threads may add some sums in another order (values equal to rounding only).
OMP_NUM_THREADS=1 "$bin" run --config "$tmp/work/tiny.ini" --norms 2,inf --samples 4 --batch 2 --quiet \
  --out "$tmp/work/whole" > /dev/null
wait_for_jobs
for i in 0 1 2; do
  state=$(job_state "${array_job}_$i")
  check "array task $i: ${state:-no state} (log: $(tail -1 "$job/logs/shard-$i.log" 2> /dev/null))" test "$state" = COMPLETED
  check "shard $i wrote its own folder" test -s "$job/shard-$i/run.json"
done
state=$(job_state "$merge_job")
check "the merge job: ${state:-no state} (log: $(tail -1 "$job/logs/merge.log" 2> /dev/null))" test "$state" = COMPLETED
last_end=$(scontrol show job "$array_job" 2> /dev/null | sed -n 's/.*EndTime=\([0-9T:-]*\).*/\1/p' | sort | tail -1)
merge_start=$(scontrol show job "$merge_job" 2> /dev/null | sed -n 's/.*StartTime=\([0-9T:-]*\).*/\1/p')
check "the merge job started after the last shard ended ($merge_start, $last_end)" \
  test -n "$last_end" -a -n "$merge_start" -a ! "$merge_start" \< "$last_end"
same=$(compare_records "$tmp/work/whole/samples.jsonl" "$job/merged/samples.jsonl")
check "the merged run = the unsharded run, record for record ($same)" test "$same" = same
check "the merged run.json lists 3 shards" \
  python3 -c 'import json,sys; sys.exit(len(json.load(open(sys.argv[1]))["merged"]["shards"]) != 3)' "$job/merged/run.json"
# plot_results.py falls back on Debian's python3 when the one on PATH lacks matplotlib.
if python3 -c 'import matplotlib' 2> /dev/null || /usr/bin/python3 -c 'import matplotlib' 2> /dev/null; then
  check "the merge job drew the figures" test -s "$job/merged/overview.png"
else
  echo "note: no matplotlib here: the figures are not checked"
fi

# 4. A shard cut short (as by a time limit: 3 of its records, no end time),
#    the merge not done: submit.sh --continue resumes it and merges.
err=$(cd "$tmp/work" && "$src/scripts/slurm/submit.sh" --config tiny.ini --shards 3 --out job --binary "$bin" --continue 2>&1)
check "submit.sh --continue refuses a merged job folder" test "${err#*the run was merged already}" != "$err"
rm -rf "$job/merged"
head -3 "$job/shard-0/samples.jsonl" > "$job/shard-0/cut.jsonl" && mv "$job/shard-0/cut.jsonl" "$job/shard-0/samples.jsonl"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); del r["finished"]; json.dump(r, open(sys.argv[1], "w"))' \
  "$job/shard-0/run.json"
submit --continue
wait_for_jobs
check "--continue: the merge job $(job_state "$merge_job")" test "$(job_state "$merge_job")" = COMPLETED
check "--continue: shard 0 resumed (its log)" grep -q "20 records (17 new)" "$job/logs/shard-0.log"
same=$(compare_records "$tmp/work/whole/samples.jsonl" "$job/merged/samples.jsonl")
check "--continue: the merged run = the unsharded run ($same)" test "$same" = same

echo "slurm tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
