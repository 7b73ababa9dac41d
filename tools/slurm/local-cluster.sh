#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing the cluster path against a real Slurm
# (test/slurm.test.ts, `make slurm-test`). Needs root and Debian's slurmd, slurmctld, slurm-client
# and munge (.ci/run installs them). Everything it writes lives under STATE_DIR; nothing in /etc is
# changed (SLURM_CONF points at STATE_DIR/slurm.conf). Daemons are stopped by the pids they wrote.
#
#   tools/slurm/local-cluster.sh start STATE_DIR     starts munged (if none runs), slurmctld, slurmd;
#                                                    waits until the node is idle; prints SLURM_CONF=...
#   tools/slurm/local-cluster.sh stop STATE_DIR      stops what `start` started
set -euo pipefail
cmd="${1:?usage: local-cluster.sh start|stop STATE_DIR}"
state="$(mkdir -p "${2:?usage: local-cluster.sh start|stop STATE_DIR}" && cd "$2" && pwd)"
conf="$state/slurm.conf"
node="$(hostname -s)"

need() { command -v "$1" >/dev/null || { echo "local-cluster: $1 is missing; apt-get install -y slurmd slurmctld slurm-client munge" >&2; exit 2; }; }

stop_pidfile() {
  local file="$1"
  [[ -f "$file" ]] || return 0
  local pid; pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

case "$cmd" in
  start)
    [[ $(id -u) == 0 ]] || { echo "local-cluster: run as root (SlurmUser=root in the test cluster)" >&2; exit 2; }
    for t in munged slurmctld slurmd sbatch sinfo; do need "$t"; done
    mkdir -p "$state/spool/ctld" "$state/spool/d" "$state/log"
    if ! pgrep -x munged >/dev/null; then
      if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
      fi
      mkdir -p /run/munge && chown munge:munge /run/munge
      rm -f /run/munge/munged.pid
      runuser -u munge -- /usr/sbin/munged
      # munged daemonizes and writes its pid file under /run/munge; keep a copy for `stop`.
      for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
      cp /run/munge/munged.pid "$state/munged.pid"
    fi
    cpus="$(nproc)"
    mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
    cat > "$conf" <<CONF
ClusterName=biasinit
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
NodeName=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF="$conf"
    /usr/sbin/slurmctld -f "$conf"
    /usr/sbin/slurmd -f "$conf"
    for _ in $(seq 150); do
      if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then echo "SLURM_CONF=$conf"; exit 0; fi
      sleep 0.2
    done
    echo "local-cluster: the node did not become idle in 30 s; logs in $state/log" >&2
    sinfo >&2 || true
    exit 1
    ;;
  stop)
    stop_pidfile "$state/slurmd.pid"
    stop_pidfile "$state/slurmctld.pid"
    stop_pidfile "$state/munged.pid"
    ;;
  *) echo "usage: local-cluster.sh start|stop STATE_DIR" >&2; exit 2 ;;
esac
