"""The one records writer of every study: rows of keys + a summary dict -> a flat table -> an
atomic CSV (``records.csv``, which the study's tables and figures read).

Only pandas (and the atomic writes): a records job never imports torch through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ...io.atomic import atomic_write_text

__all__ = ["flat_row", "records_frame", "write_frame", "write_records"]


def flat_row(keys: Mapping[str, Any], summary: Mapping[str, Any], *, flatten: Iterable[str] = ()) -> dict[str, Any]:
    """One record row: the summary's scalar fields (nested dicts and lists dropped), each nested
    dict named in ``flatten`` as ``<name>_<field>`` columns after them, then ``keys`` (keys win)."""
    flatten = tuple(flatten)
    row = {k: v for k, v in summary.items() if k not in flatten and not isinstance(v, (dict, list))}
    for name in flatten:
        row.update({f"{name}_{k}": v for k, v in (summary.get(name) or {}).items()})
    return {**row, **keys}


def records_frame(
    rows: Sequence[Mapping[str, Any]], *, first: Sequence[str] = (), columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rows as one table, ``first`` columns first (the rest in order of appearance);
    ``columns``: the header of a table without rows."""
    df = pd.DataFrame([dict(r) for r in rows], columns=list(columns) if columns is not None and not rows else None)
    return df[[*first, *[c for c in df.columns if c not in first]]] if first else df


def write_frame(frame: pd.DataFrame, out_csv: str | Path) -> pd.DataFrame:
    """Publish ``frame`` at ``out_csv`` atomically (no index column)."""
    atomic_write_text(out_csv, frame.to_csv(index=False))
    return frame


def write_records(
    rows: Sequence[Mapping[str, Any]],
    out_csv: str | Path,
    *,
    first: Sequence[str] = (),
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """:func:`records_frame` of ``rows`` written to ``out_csv`` (:func:`write_frame`)."""
    return write_frame(records_frame(rows, first=first, columns=columns), out_csv)
