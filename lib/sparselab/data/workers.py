"""How many DataLoader worker processes a job's image-folder loaders start (``compute.num_workers``).

``auto`` is resolved when a loader is built, never in rule params, so a plan does not depend on
the machine that builds it. The job's CPU budget per training process is the smaller of

* the CPUs this process may run on (``os.sched_getaffinity``: a SLURM allocation, a ``taskset``;
  ``os.cpu_count()`` where the platform has no affinity), shared by the job's processes, and
* its torch thread count, which every workflow job sets from the rule's ``threads``
  (:func:`sparselab.jobs.snakemake_job`), so a local Snakemake run with several jobs at once does not
  start a machine's worth of workers per job;

one CPU stays with the training process, and at most :data:`MAX_AUTO_WORKERS` workers start.
"""

from __future__ import annotations

import os

import torch

MAX_AUTO_WORKERS = 16


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def auto_workers(cpus: int, processes: int = 1, threads: int | None = None) -> int:
    """Workers per process for ``cpus`` CPUs shared by ``processes`` training processes."""
    per_process = max(1, cpus // max(1, processes))
    if threads is not None:
        per_process = min(per_process, max(1, threads))
    return min(MAX_AUTO_WORKERS, per_process - 1)


def resolve_num_workers(setting: int | str, processes: int = 1) -> int:
    """``compute.num_workers`` as a number: an explicit count as is, ``auto`` from this job's CPUs."""
    if setting == "auto":
        return auto_workers(available_cpus(), processes, torch.get_num_threads())
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(f"compute.num_workers: {setting!r} must be 'auto' or an integer >= 0")
    return setting
