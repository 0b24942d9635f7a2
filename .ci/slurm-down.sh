#!/usr/bin/env bash
# Stop what slurm-up.sh started; Slurm's state under /var/lib/slurm is kept.
set -u
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
stop_pids() {  # TERM each, wait up to 10 s for all to be gone
  local p; for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 100); do
    local left=0; for p in "$@"; do alive "$p" && left=1; done
    [ $left = 0 ] && return 0; sleep 0.1
  done; return 1; }
pids=""
for f in /run/slurmctld.pid /run/slurmd-*.pid; do [ -s "$f" ] && pids="$pids $(cat "$f")"; done
scontrol shutdown >/dev/null 2>&1
[ -n "$pids" ] && stop_pids $pids
rm -f /run/slurmctld.pid /run/slurmd-*.pid
[ -s /run/munge/munged.pid ] && stop_pids "$(cat /run/munge/munged.pid)"
exit 0
