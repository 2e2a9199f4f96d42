"""Training that produced a non-finite loss or weight: an error, never a finished-looking result."""

from __future__ import annotations


class DivergenceError(RuntimeError):
    """A run's loss or weights became NaN or infinite; the message names the run, epoch and step.

    Raised before any checkpoint, metrics or summary of the run is written, so Snakemake sees a
    failed job and the CLI exits non-zero."""
