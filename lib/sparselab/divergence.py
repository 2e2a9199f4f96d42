"""NaN or infinite weights: the error a diverged run raises, and the check every writer of weights shares.

This module sits at the bottom of the package and imports nothing (not even torch), so checkpoint
I/O, the metrics and the CLI can raise or catch :class:`DivergenceError` without depending on the
training engine (``sparselab.train.divergence`` re-exports it, with the engine's own checks).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class DivergenceError(RuntimeError):
    """A run's loss or weights became NaN or infinite; the message names the run, epoch and step.

    Raised before any checkpoint, metrics or summary of the run is written, so Snakemake sees a
    failed job and the CLI exits non-zero."""


def first_non_finite(tensors: Iterable[tuple[str, torch.Tensor]]) -> tuple[str, int, int] | None:
    """``(name, non-finite entries, entries)`` of the first floating tensor holding a NaN or an
    infinity, or None when all are finite. One pass and one host sync per tensor: for checkpoints
    and analyses, not for every training step."""
    for name, t in tensors:
        if t.is_floating_point() and not bool(t.isfinite().all()):
            return name, int((~t.isfinite()).sum()), t.numel()
    return None


def describe(found: tuple[str, int, int]) -> str:
    """``"name (k of n entries NaN or infinite)"``."""
    name, bad, total = found
    return f"{name} ({bad} of {total} entries NaN or infinite)"


def check_finite(tensors: Iterable[tuple[str, torch.Tensor]], source: str, consequence: str) -> None:
    """Raise :class:`DivergenceError` ``"<source>: non-finite weights: <tensor> (...): <consequence>"``
    when a floating tensor of ``tensors`` holds a NaN or an infinity."""
    found = first_non_finite(tensors)
    if found is not None:
        raise DivergenceError(f"{source}: non-finite weights: {describe(found)}: {consequence}")
