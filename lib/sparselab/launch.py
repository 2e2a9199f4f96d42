"""Launching a job's training processes under torchrun, and where a process stands among them.

Kept free of torch imports: every workflow job imports it (through :mod:`sparselab.jobs`),
including the report jobs, whose code dependencies must not include the training stack.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

log = logging.getLogger("sparselab")

# Set by torchrun in every process it starts.
_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """The process that writes files and logs progress."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> World:
        if not all(v in os.environ for v in _TORCHRUN_VARS):
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))


def torchrun_command(nprocs: int, script: str, args: Sequence[str] = ()) -> list[str]:
    """``torchrun --standalone --nproc-per-node N script args`` with this interpreter."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nprocs}", script, *args]


def launch(nprocs: int, script: str, args: Sequence[str] = (), threads: int = 1) -> int:
    """Run ``script`` in ``nprocs`` processes under torchrun and return the exit status.

    Each process gets an equal share of the job's threads; gloo stays on the loopback interface
    (a single-node job), and ``CUDA_VISIBLE_DEVICES`` (set by SLURM or :mod:`sparselab.gpus`)
    is passed on, so the processes use exactly the job's devices.
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // nprocs))}
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = torchrun_command(nprocs, script, args)
    log.info("launching %d training processes: %s", nprocs, " ".join(cmd))
    return subprocess.run(cmd, env=env).returncode
