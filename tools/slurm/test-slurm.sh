#!/usr/bin/env bash
# The sharded sweep through a real Slurm, in one command (as root): bring up
# a single-node Slurm (Debian's slurmctld, slurmd, munge; installed if
# missing), run the preset unsharded as the reference, run it again as an
# N-task job array (one shard per task), check every task, merge the shards
# and require exactly the reference's points, each once; stop Slurm.
#
#   tools/slurm/test-slurm.sh                        # target/release/issbench, quick, 3 shards
#   ISSBENCH=/path/issbench PRESET=ptb N=4 tools/slurm/test-slurm.sh
#
# Env: ISSBENCH (target/release/issbench), PRESET (quick), N (3), OUT
# (/tmp/issbench-slurm-test), BUDGET_MS (20: timings do not matter here),
# SLURM_FEATURE (bench), SBATCH_EXTRA (more sbatch options), ARRAY_TIMEOUT
# (s, 600), KEEP_SLURM=1 to leave the cluster up.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ISSBENCH=$(realpath -m "${ISSBENCH:-$HERE/../../target/release/issbench}")
PRESET=${PRESET:-quick} N=${N:-3} OUT=${OUT:-/tmp/issbench-slurm-test} BUDGET_MS=${BUDGET_MS:-20}
FEATURE=${SLURM_FEATURE:-bench} TIMEOUT=${ARRAY_TIMEOUT:-600}
export SLURM_CONF=${SLURM_LOCAL_DIR:-/tmp/issbench-slurm}/slurm.conf
t0=$(date +%s.%N)
el() { echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}'; }
die() { echo "test-slurm: FAILED: $*" >&2; exit 1; }
[ -x "$ISSBENCH" ] || die "no issbench binary at $ISSBENCH (cargo build --release, or set ISSBENCH)"
[ "${KEEP_SLURM:-0}" = 1 ] || trap '"$HERE/stop-local-slurm.sh" >/dev/null' EXIT

"$HERE/start-local-slurm.sh"
echo "test-slurm: cluster up after $(el)s"

rm -rf "$OUT"; mkdir -p "$OUT/logs" "$OUT/reference"
"$ISSBENCH" sweep --preset "$PRESET" --budget-ms "$BUDGET_MS" --out "$OUT/reference" --no-charts >"$OUT/logs/reference.out" \
  || die "the unsharded reference sweep (log: $OUT/logs/reference.out)"
echo "test-slurm: reference sweep done after $(el)s"

# shellcheck disable=SC2086  # SBATCH_EXTRA is a word list on purpose
jobid=$(sbatch --parsable --array=0-$((N - 1)) --constraint="$FEATURE" ${SBATCH_EXTRA:-} \
  --output="$OUT/logs/%A_%a.out" --error="$OUT/logs/%A_%a.err" \
  --export="ALL,ISSBENCH=$ISSBENCH,OUT=$OUT,PRESET=$PRESET,SWEEP_ARGS=--budget-ms $BUDGET_MS" \
  "$HERE/sweep-array.sbatch") || die "sbatch"
echo "test-slurm: submitted array job $jobid (tasks 0-$((N - 1)))"

# Wait (bounded) until no task of the array is pending or running.
end=$(( $(date +%s) + TIMEOUT ))
while [ -n "$(timeout 5 squeue -h -j "$jobid" -o %i 2>/dev/null)" ]; do
  [ "$(date +%s)" -lt "$end" ] || { squeue -j "$jobid"; scancel "$jobid"; die "array not done after ${TIMEOUT}s"; }
  sleep 1
done

# Every task: Slurm's record (kept MinJobAge=600 s; ExitCode 0:0 = status 0,
# no signal) and the shard's CSV.
bad=0 shards=()
for i in $(seq 0 $((N - 1))); do
  rec=$(timeout 5 scontrol -o show job "${jobid}_$i" 2>/dev/null) || rec=
  state=$(grep -o 'JobState=[A-Z_]*' <<<"$rec" | cut -d= -f2 || true)
  code=$(grep -o ' ExitCode=[0-9:]*' <<<"$rec" | cut -d= -f2 || true)
  csv=$OUT/$PRESET.shard-$i-of-$N.csv
  shards+=("$csv")
  echo "test-slurm: task $i: state=${state:-?} exit=${code:-?} csv=$([ -s "$csv" ] && echo ok || echo MISSING)"
  if [ "$state" != COMPLETED ] || [ "$code" != 0:0 ] || [ ! -s "$csv" ]; then
    bad=1; cat "$OUT/logs/${jobid}_$i.err" >&2 2>/dev/null || true
  fi
done
[ $bad = 0 ] || die "some array tasks failed (logs in $OUT/logs)"

"$ISSBENCH" merge -o "$OUT/$PRESET.csv" --expect "$OUT/reference/$PRESET.csv" "${shards[@]}" \
  || die "the merged shards are not the reference's points"
echo "test-slurm: OK: $N shards under Slurm -> $OUT/$PRESET.csv, the reference's points each once; $(el)s in all"
