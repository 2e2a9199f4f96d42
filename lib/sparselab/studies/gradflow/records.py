"""The gradient-flow study's ``records.csv``: every run's final summary plus a summary of every
dense baseline checkpoint, one row each, keys first (:mod:`.report` reads it). Apart from the
tables and figures, so that editing plotting code never reruns the records job."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..base.records import flat_row, records_frame, write_frame
from .keys import KEYS
from .summary import summarize

__all__ = ["KEYS", "records_from", "write_records"]


def records_from(summaries: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per (keys, summary) pair, keys first; nested fields (widths) are dropped."""
    return records_frame([flat_row(keys, summary) for keys, summary in summaries], first=KEYS)


def write_records(
    runs: Sequence[tuple[dict[str, Any], str]], dense: Sequence[tuple[dict[str, Any], str]], records_csv: str | Path
) -> None:
    """records.csv: the final summary of every run, and a summary of every dense baseline
    checkpoint (``measure = dense``), one row each (sparselab.studies.gradflow.report reads it)."""
    rows = [(keys, json.loads(Path(path).read_text())) for keys, path in runs]
    rows += [(keys, summarize(path)) for keys, path in dense]
    write_frame(records_from(rows), records_csv)
