"""What every workflow job does first: log to the rule's log file, take its GPUs, read the compute settings.

Workflow scripts are thin adapters; they wrap their one library call in :func:`snakemake_job`,
so failures land in the rule's ``log:`` file with a traceback (shown by ``--show-failed-logs``).
A job whose rule asks for more than one GPU re-runs its own script under torchrun, one process
per device (see :mod:`sparselab.launch` and :mod:`sparselab.train.distributed`); rank 0 logs to the rule's log file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from . import gpus
from .config import ComputeHparams
from .config.entry_names import remember_entry_names
from .io.state_dir import close_state_dir, open_state_dir, state_key
from .launch import World, launch

log = logging.getLogger("sparselab")


def setup_logging(log_file: str | None, *, append: bool = False, level: int = logging.INFO) -> None:
    """Lines at ``level`` to the log file (or stderr), warnings included, replacing earlier handlers."""
    handler: logging.Handler = (
        logging.FileHandler(log_file, mode="a" if append else "w") if log_file else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)


def compute_settings(config: dict[str, Any]) -> ComputeHparams:
    """The config's compute section; progress bars become plain lines since jobs write to logs."""
    compute = ComputeHparams.from_dict(config.get("compute", {}), path="compute")
    return compute.replace(progress="lines") if compute.progress == "auto" else compute


def requested_gpus(smk: Any) -> int:
    return int(getattr(smk.resources, "gpu", 0) or 0)


def _take_gpus(count: int, compute: ComputeHparams) -> None:
    """Lease this job's devices (local runs; SLURM allocates its own); a job that asks for none
    sees none. CPU-only settings and machines without GPUs lease nothing: the job runs on the CPU."""
    if compute.device == "cpu" or "SLURM_STEP_ID" in os.environ:
        return
    if not gpus.device_pool():
        if count >= 1:
            log.info("the rule asks for %d GPU(s) but none is visible: running on the CPU", count)
        return
    if count < 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # another job's devices are not this job's to use
        return
    gpus.assign_devices(count)


@contextlib.contextmanager
def snakemake_job(smk: Any) -> Iterator[ComputeHparams]:
    """Set up logging, devices and threads for a ``script:`` job and yield its compute settings.

    With ``gpu > 1`` the first call launches torchrun on this very script and exits with its
    status; inside the launched processes the same call yields and training runs data-parallel.
    """
    world, processes = World.from_env(), requested_gpus(smk)
    log_file = smk.log[0] if len(smk.log) else None
    if world.main:
        setup_logging(log_file, append=world.distributed)  # rank 0 appends to the launcher's lines
    else:
        setup_logging(None, level=logging.WARNING)  # the other ranks: warnings to stderr only
    compute = compute_settings(smk.config)
    remember_entry_names(smk.config.get("datasets", {}))  # data errors name datasets.<name>.root
    threads = max(1, int(smk.threads))
    state_dir = _state_dir(smk)
    if not world.distributed:  # the launcher (or the only process) owns the resume state
        log.info("rule %s, wildcards %s", smk.rule, dict(smk.wildcards.items()))
        if state_dir is not None:
            open_state_dir(state_dir, job_state_key(smk))
        _take_gpus(processes, compute)
        if processes > 1:
            status = launch(processes, sys.argv[0], sys.argv[1:], threads=threads)
            if status != 0:
                log.error("the %d training processes failed (exit status %d)", processes, status)
            elif state_dir is not None:
                close_state_dir(state_dir)
            raise SystemExit(status)
    if "torch" in sys.modules:  # Snakemake also sets OMP_NUM_THREADS; this makes it explicit
        sys.modules["torch"].set_num_threads(max(1, threads // max(1, world.size)))
    try:
        yield compute
    except BaseException:
        log.exception("job failed")
        raise
    if state_dir is not None and not world.distributed:
        close_state_dir(state_dir)


def _state_dir(smk: Any) -> str | None:
    return getattr(smk.params, "state_dir", None) or None


def job_state_key(smk: Any) -> dict[str, Any]:
    """What a job's resume state is valid for: the rule's params (the config it reads), the code
    digest among them, and the contents of its input files."""
    params = {name: value for name, value in smk.params.items() if name not in ("state_dir", "code")}
    return state_key({"rule": smk.rule, "params": params}, str(getattr(smk.params, "code", "")), list(smk.input))
