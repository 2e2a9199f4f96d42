#!/bin/bash
# Bring up a single-node SLURM cluster on 127.0.0.1 for CI (Debian 12, root, no systemd), following
# ../shared/reference/slurm.md. Idempotent: re-running with the daemons alive changes nothing.
# Stop it with .ci/slurm/down.sh (by PID from the daemons' pid files).
#   WITH_DBD=1   (default) also slurmdbd + a local MariaDB, so `sacct` works: the plugin's default
#                status command, the one real clusters use. With WITH_DBD=0 sacct fails and the plugin
#                must be told `--slurm-status-command squeue`, else Snakemake hangs forever.
#   FAKE_GPUS=N  (default 2) declare N fake GPUs (gres/gpu backed by /dev/null-like char devices), so
#                rules asking gpu=1 or gpu=2 are schedulable; torch still runs on CPU.
set -euo pipefail
WITH_DBD=${WITH_DBD:-1}
FAKE_GPUS=${FAKE_GPUS:-2}
HOST=$(hostname -s)
log() { echo "[slurm up $(date +%T)] $*"; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (installs packages, starts daemons)" >&2; exit 1; }
START=$(date +%s.%N)

# 1. packages (no systemd: the postinst scripts cannot start anything, which is what we want)
pkgs="munge slurmctld slurmd slurm-client"
[ "$WITH_DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
if ! dpkg -s $pkgs >/dev/null 2>&1; then
  log "installing $pkgs"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# 2. directories and the munge key
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm \
         /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || { /usr/sbin/mungekey -c -f; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }

# 3. slurm.conf (rewritten each time; identical content => no restart)
CPUS=$(nproc)
REALMEM=$(awk '/MemTotal/ {print int($2/1024*0.9)}' /proc/meminfo)   # below what slurmd detects, else node INVALID
GRES_NODE=""; GRES_TYPES=""
if [ "$FAKE_GPUS" -gt 0 ]; then
  for i in $(seq 0 $((FAKE_GPUS-1))); do [ -e /dev/fakegpu$i ] || mknod /dev/fakegpu$i c 1 3; done
  echo "NodeName=$HOST Name=gpu File=/dev/fakegpu[0-$((FAKE_GPUS-1))]" > /etc/slurm/gres.conf
  GRES_NODE=" Gres=gpu:$FAKE_GPUS"; GRES_TYPES="GresTypes=gpu"
  [ "$WITH_DBD" = 1 ] && GRES_TYPES=$'GresTypes=gpu\nAccountingStorageTRES=gres/gpu'   # sacct AllocTRES shows gres/gpu=N
else
  rm -f /etc/slurm/gres.conf
fi
if [ "$WITH_DBD" = 1 ]; then
  # job_comment: sacct shows the plugin's --comment rule_<name>_wildcards_<...> (the tests read it)
  ACCT=$'AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\nAccountingStoragePort=6819\nAccountingStoreFlags=job_comment'
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi
# Time limits: a job is TIMEOUT-killed by slurmctld's periodic check (every ~30 s) once past its
# limit + OverTimeLimit (0 min, the default: exact limits, like most sites); it gets SIGTERM, then
# SIGKILL KillWait seconds later. KillWait=5 (default 30) shortens a CI TIMEOUT without changing
# what the job sees (our training saves resumable state after every epoch, not on SIGTERM).
cat > /etc/slurm/slurm.conf.new <<CONF
ClusterName=localci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
KillWait=5
OverTimeLimit=0
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
${ACCT}
${GRES_TYPES}
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REALMEM}${GRES_NODE} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
CONF
CONF_CHANGED=0
cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf || { mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf; CONF_CHANGED=1; }
rm -f /etc/slurm/slurm.conf.new

# 4. munge
if ! alive /run/munge/munged.pid; then
  log "starting munged"; runuser -u munge -- /usr/sbin/munged
fi
for i in $(seq 1 40); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.25; done

# 5. accounting: MariaDB (127.0.0.1 only) + slurmdbd + cluster registration (before slurmctld starts)
if [ "$WITH_DBD" = 1 ]; then
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  if ! alive /run/mysqld/mysqld.pid; then
    log "starting mariadbd (127.0.0.1 only)"
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
       --pid-file=/run/mysqld/mysqld.pid >>/var/log/mariadbd.log 2>&1 </dev/null &
  fi
  for i in $(seq 1 120); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.25; done
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmci';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  cat > /etc/slurm/slurmdbd.conf.new <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmci
StorageLoc=slurm_acct_db
CONF
  chmod 600 /etc/slurm/slurmdbd.conf.new
  mv /etc/slurm/slurmdbd.conf.new /etc/slurm/slurmdbd.conf
  if ! alive /run/slurmdbd.pid; then log "starting slurmdbd"; /usr/sbin/slurmdbd; fi
  for i in $(seq 1 120); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.25; done
  sacctmgr -n list cluster format=cluster | grep -qw localci || sacctmgr -i add cluster localci >/dev/null
fi

# 6. slurmctld + slurmd (restarted, by PID, only when slurm.conf changed)
if [ "$CONF_CHANGED" = 1 ]; then
  for d in slurmd slurmctld; do
    if alive /run/$d.pid; then
      p=$(cat /run/$d.pid); log "config changed: stopping $d ($p)"; kill "$p"
      for i in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    fi
  done
fi
alive /run/slurmctld.pid || { log "starting slurmctld"; /usr/sbin/slurmctld; }
alive /run/slurmd.pid    || { log "starting slurmd";    /usr/sbin/slurmd; }

# 7. wait until the node is usable, then a smoke test
for i in $(seq 1 240); do
  st=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
  case "$st" in idle|mixed|allocated) break;; esac
  case "$st" in *drain*|*inval*|down*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true;; esac
  sleep 0.25
done
sinfo
[ "$(srun -t 1 hostname)" = "$HOST" ] || { echo "srun smoke test failed" >&2; exit 1; }
log "SLURM ready in $(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s (WITH_DBD=$WITH_DBD FAKE_GPUS=$FAKE_GPUS)"
