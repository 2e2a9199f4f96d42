"""The one summary writer: the ``summary.json`` a study's training job ends with (the final
metrics of its run and the study's own fields), written atomically.

Only json (and the atomic writes), so the records jobs that read summaries stay light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...io.atomic import atomic_write_json

__all__ = ["final_metrics", "write_summary"]


def final_metrics(final: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The ``keys`` of a run's final metrics row (``TrainResult.final``) that it has, in that order."""
    return {k: final[k] for k in keys if final.get(k) is not None}


def write_summary(path: str | Path, *parts: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``parts`` in order (later parts win) and publish them at ``path``; returns the summary."""
    summary: dict[str, Any] = {}
    for part in parts:
        summary.update(part)
    atomic_write_json(path, summary)
    return summary
