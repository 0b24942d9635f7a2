#!/usr/bin/env bash
# A real Slurm on this one host for the tests: munge, slurmctld and SLURM_NODES
# slurmd "nodes" (n1..nN, default 2) sharing the host's CPUs and memory, started
# without systemd.  Idempotent: installs only what is missing, writes the
# configuration, starts only what is not running.  Run as root.
set -euo pipefail
NODES=${SLURM_NODES:-2}
export DEBIAN_FRONTEND=noninteractive
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
waitfor() { local n=$1; shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }

missing=""
for package in slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing="$missing $package"
done
if [ -n "$missing" ]; then
  for try in 1 2 3; do
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null && break
    [ "$try" = 3 ] && exit 1; sleep 5
  done
fi

# munge: the key (the package usually made it), its run directory, the daemon.
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0600 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
munge -n >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/munged
waitfor 50 sh -c 'munge -n | unmunge'

# slurm.conf: the host's CPUs and memory split between the nodes.
read -r CPUS MEM < <(slurmd -C | head -1 | sed -E 's/.*CPUs=([0-9]+).*RealMemory=([0-9]+).*/\1 \2/')
PER_CPU=$(( CPUS / NODES )); [ "$PER_CPU" -ge 1 ] || PER_CPU=1
PER_MEM=$(( MEM / NODES ))
conf=/etc/slurm/slurm.conf
new=$(mktemp)
{
cat <<CONF
ClusterName=framewire
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd-%n
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MinJobAge=3600
CONF
for i in $(seq 1 "$NODES"); do
  echo "NodeName=n$i NodeAddr=127.0.0.1 Port=$((17000 + i)) CPUs=$PER_CPU RealMemory=$PER_MEM State=UNKNOWN"
done
echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
echo "PartitionName=short Nodes=ALL MaxTime=00:30:00 State=UP"
} > "$new"
changed=1
cmp -s "$new" "$conf" 2>/dev/null && changed=0
install -m 0644 "$new" "$conf" && rm -f "$new"
install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/log/slurm

if [ "$changed" = 1 ] && scontrol ping >/dev/null 2>&1; then
  scontrol shutdown >/dev/null 2>&1 || true   # a new node set needs a restart
  for _ in $(seq 50); do scontrol ping >/dev/null 2>&1 || break; sleep 0.2; done
  rm -f /run/slurmctld.pid
fi
scontrol ping >/dev/null 2>&1 || slurmctld
waitfor 100 scontrol ping
for i in $(seq 1 "$NODES"); do
  f=/run/slurmd-n$i.pid
  { [ -s "$f" ] && alive "$(cat "$f")"; } || slurmd -N "n$i"
done
# Ready: every node registered and usable (idle, or busy with jobs that survived).
ready() { ! sinfo -h -N -o '%T' | grep -qvE '^(idle|mixed|allocated|completing)$'; }
waitfor 150 ready
for i in $(seq 1 "$NODES"); do   # a node drained by an earlier run comes back
  scontrol update nodename="n$i" state=resume >/dev/null 2>&1 || true
done
sinfo -N
