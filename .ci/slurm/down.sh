#!/bin/bash
# Stop the daemons started by .ci/slurm/up.sh, by PID from their pid files, in reverse start order.
# Safe to run when nothing is up (e.g. from a trap after up.sh failed half-way). Always exits 0.
for pf in /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid /run/mysqld/mysqld.pid /run/munge/munged.pid; do
  [ -s "$pf" ] || continue
  p=$(cat "$pf")
  if kill -0 "$p" 2>/dev/null; then
    echo "[slurm down] stopping $pf ($p)"; kill "$p"
    for i in $(seq 1 80); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$p" 2>/dev/null; then echo "[slurm down] $p ignored SIGTERM for 20 s: SIGKILL"; kill -9 "$p" 2>/dev/null; fi
  fi
done
exit 0
