"""The gradient-flow study's ``records.csv``: every run's final summary plus a summary of every
dense baseline checkpoint, one row each (:mod:`sparselab.report.gradflow` reads it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ...report.gradflow_records import records_from
from ..base.records import write_frame
from .summary import summarize


def write_records(runs: Sequence[tuple[dict[str, Any], str]], dense: Sequence[tuple[dict[str, Any], str]],
                  records_csv: str | Path) -> None:  # fmt: skip
    """records.csv: the final summary of every run, and a summary of every dense baseline
    checkpoint (``measure = dense``), one row each (sparselab.report.gradflow reads it)."""
    rows = [(keys, json.loads(Path(path).read_text())) for keys, path in runs]
    rows += [(keys, summarize(path)) for keys, path in dense]
    write_frame(records_from(rows), records_csv)
