#!/usr/bin/env bash
# Stop the single-node Slurm started by start-local-slurm.sh and clean up.
#   stop-local-slurm.sh               # stop slurmd, slurmctld, munged (if start made it); rm -rf $SLURM_LOCAL_DIR
#   stop-local-slurm.sh --keep-munge  # (used by start on a half-up cluster) leave munged, keep dir
# Processes are ended by the pid files the daemons wrote, never by name.
set -u
DIR=${SLURM_LOCAL_DIR:-/tmp/issbench-slurm}
keep=${1:-}

# alive = exists and is not a zombie (kill -0 succeeds on zombies)
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"; }
stop_pidfile() {   # $1 = pid file, $2 = label; TERM, wait up to 10 s, then KILL
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if alive "$pid"; then
    kill "$pid"
    for _ in $(seq 40); do alive "$pid" || break; sleep 0.25; done
    alive "$pid" && { echo "stop-local-slurm: $2 ($pid) ignored TERM, killing"; kill -9 "$pid"; }
    echo "stop-local-slurm: stopped $2 ($pid)"
  fi
  rm -f "$f"
}

# Cancel anything still queued/running so slurmd has no steps left.
[ -f "$DIR/slurm.conf" ] && SLURM_CONF=$DIR/slurm.conf timeout 5 scancel --quiet --user=root 2>/dev/null
stop_pidfile "$DIR/slurmd.pid" slurmd
stop_pidfile "$DIR/slurmctld.pid" slurmctld
if [ "$keep" != --keep-munge ]; then
  [ -f "$DIR/munged.ours" ] && stop_pidfile /run/munge/munged.pid munged
  rm -rf "$DIR"
fi
exit 0
