"""Which GPUs a local job may use: a lease of device ids, exported as ``CUDA_VISIBLE_DEVICES``.

Snakemake counts GPUs (``--resources gpu=N`` caps the sum of the ``gpu`` resources of running
jobs) but never says which devices a job should take, so two jobs would both train on GPU 0.
Each job therefore leases its ids: one lock file per device, taken with ``flock`` and held until
the job's process exits (a killed job frees its devices with it). The first free ids win. On
SLURM, the scheduler allocates and isolates devices itself, so nothing is leased inside a SLURM
job step.

The pool is ``$SPARSELAB_GPUS`` (e.g. ``0,1,2,3``), else the ``CUDA_VISIBLE_DEVICES`` Snakemake
was started with, else every device ``nvidia-smi`` lists. Lock files live in
``$SPARSELAB_GPU_LOCK_DIR`` (default: a per-user directory under the system temp dir), so
several workflows on one machine share the devices too.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

log = logging.getLogger("sparselab")

_held: list[IO[bytes]] = []  # open lock files: the lease lasts as long as this process


def device_pool() -> list[str]:
    for var in ("SPARSELAB_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(var)
        if value is not None:
            return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"sparselab-gpus-{os.getuid()}"
    path = Path(os.environ.get("SPARSELAB_GPU_LOCK_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _try_lock(path: Path) -> IO[bytes] | None:
    f = open(path, "ab")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def lease(count: int, *, wait_s: float = 3600.0, poll_s: float = 2.0) -> list[str]:
    """Lock ``count`` free devices of the pool for this process and return their ids.

    Waits (up to ``wait_s``) while others hold them: Snakemake's own ``gpu`` resource limit
    usually guarantees enough are free, but another workflow may share the machine.
    """
    pool = device_pool()
    if count > len(pool):
        raise RuntimeError(
            f"a job asks for {count} GPUs but the pool has {len(pool)} ({','.join(pool) or 'none'}): "
            "lower the config's resources.gpus, or set SPARSELAB_GPUS / CUDA_VISIBLE_DEVICES to the devices to use"
        )
    directory, deadline, announced = lock_dir(), time.monotonic() + wait_s, False
    while True:
        taken: list[tuple[str, IO[bytes]]] = []
        for device in pool:
            f = _try_lock(directory / f"gpu{device}.lock")
            if f is not None:
                taken.append((device, f))
                if len(taken) == count:
                    _held.extend(f for _, f in taken)
                    return [d for d, _ in taken]
        for _, f in taken:  # not enough: give back what we took and wait
            f.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {count} free GPUs among {pool} after {wait_s:.0f} s (locks in {directory})")
        if not announced:
            log.info("waiting for %d free GPUs among %s (locks in %s)", count, pool, directory)
            announced = True
        time.sleep(poll_s)


def assign_devices(count: int) -> list[str] | None:
    """Lease ``count`` devices and export them as ``CUDA_VISIBLE_DEVICES`` (before CUDA starts).

    Returns the ids, or None where nothing is leased: no GPUs asked for, or inside a SLURM job
    step (SLURM's allocation already set the visible devices).
    """
    if count < 1 or "SLURM_STEP_ID" in os.environ:
        return None
    ids = lease(count)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    log.info("leased GPU(s) %s (CUDA_VISIBLE_DEVICES)", ",".join(ids))
    return ids


def release_all() -> None:
    """Give the leased devices back now (normally they go when the process exits)."""
    while _held:
        _held.pop().close()
