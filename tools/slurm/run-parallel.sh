#!/usr/bin/env bash
# A sharded sweep with GNU parallel instead of Slurm: N shards, J at a time
# on this machine, then merged.
#
#   tools/slurm/run-parallel.sh                      # quick preset, 3 shards, one at a time
#   PRESET=ptb N=4 OUT=/data/ptb tools/slurm/run-parallel.sh
#
# Env: ISSBENCH (target/release/issbench), PRESET (quick), N (3), J (1: one
# shard at a time, so shards do not compete for cores; on several machines
# use `parallel -S host1,host2 -j 1` with ISSBENCH and OUT on a shared
# filesystem), OUT (/tmp/issbench-parallel), SWEEP_ARGS (more sweep options).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ISSBENCH=$(realpath -m "${ISSBENCH:-$HERE/../../target/release/issbench}")
PRESET=${PRESET:-quick} N=${N:-3} J=${J:-1} OUT=${OUT:-/tmp/issbench-parallel}
command -v parallel >/dev/null || { echo "run-parallel: install GNU parallel (apt-get install parallel)" >&2; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"

# The line: shard {} of N into $OUT/$PRESET.shard-{}-of-N.csv; stop starting
# shards after the first failure; exit codes in the joblog.
# shellcheck disable=SC2086  # SWEEP_ARGS is a word list on purpose
parallel --will-cite -j "$J" --halt soon,fail=1 --joblog "$OUT/joblog" \
  "$ISSBENCH" sweep --preset "$PRESET" --shard {}/"$N" --out "$OUT" ${SWEEP_ARGS:-} ::: $(seq 0 $((N - 1))) \
  || { echo "run-parallel: FAILED: a shard failed; see $OUT/joblog" >&2; cat "$OUT/joblog" >&2; exit 1; }

"$ISSBENCH" merge -o "$OUT/$PRESET.csv" "$OUT/$PRESET".shard-*-of-"$N".csv
echo "run-parallel: OK: $N shards -> $OUT/$PRESET.csv"
