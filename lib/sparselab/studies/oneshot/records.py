"""The one-shot study's records: every checkpoint's evaluation record (JSON) as one row of a flat
per-run table. Apart from the table and figure (:mod:`.report`), so that editing them never reruns
the records job. Only pandas."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..base.records import flat_row, records_frame, write_frame


def load_records(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per evaluation JSON; nested ``start`` metrics become ``start_<name>`` columns (the
    per-layer sparsities are dropped)."""
    rows = [flat_row({}, json.loads(Path(p).read_text()), flatten=("start",)) for p in paths]
    if not rows:
        raise ValueError("no evaluation records to collect")
    return records_frame(rows)


def write_records(paths: Iterable[str | Path], out_csv: str | Path) -> pd.DataFrame:
    return write_frame(load_records(paths), out_csv)
