"""Collect per-checkpoint evaluation records (JSON) into one flat per-run table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..io.atomic import atomic_write_with


def load_records(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per evaluation JSON; nested ``start`` metrics become ``start_<name>`` columns."""
    rows = []
    for p in paths:
        rec = json.loads(Path(p).read_text())
        rec.pop("layer_sparsity", None)
        for k, v in (rec.pop("start", None) or {}).items():
            rec[f"start_{k}"] = v
        rows.append(rec)
    if not rows:
        raise ValueError("no evaluation records to collect")
    return pd.DataFrame(rows)


def write_records(paths: Iterable[str | Path], out_csv: str | Path) -> pd.DataFrame:
    frame = load_records(paths)
    atomic_write_with(out_csv, lambda tmp: frame.to_csv(tmp, index=False))
    return frame
