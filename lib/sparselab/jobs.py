"""What every workflow job does first: log to the rule's log file and read the compute settings.

Workflow scripts are thin adapters; they wrap their one library call in :func:`snakemake_job`,
so failures land in the rule's ``log:`` file with a traceback (shown by ``--show-failed-logs``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Iterator

from .config import ComputeHparams

log = logging.getLogger("sparselab")


def setup_logging(log_file: str | None) -> None:
    """INFO lines to the log file (or stderr), warnings included, replacing earlier handlers."""
    handler: logging.Handler = logging.FileHandler(log_file, mode="w") if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


def compute_settings(config: dict[str, Any]) -> ComputeHparams:
    """The config's compute section; progress bars become plain lines since jobs write to logs."""
    compute = ComputeHparams.from_dict(config.get("compute", {}), path="compute")
    return compute.replace(progress="lines") if compute.progress == "auto" else compute


@contextlib.contextmanager
def snakemake_job(smk: Any) -> Iterator[ComputeHparams]:
    """Set up logging and threads for a ``script:`` job and yield its compute settings."""
    setup_logging(smk.log[0] if len(smk.log) else None)
    if "torch" in sys.modules:  # Snakemake also sets OMP_NUM_THREADS; this makes it explicit
        sys.modules["torch"].set_num_threads(max(1, int(smk.threads)))
    log.info("rule %s, wildcards %s", smk.rule, dict(smk.wildcards.items()))
    try:
        yield compute_settings(smk.config)
    except BaseException:
        log.exception("job failed")
        raise
