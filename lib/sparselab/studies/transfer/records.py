"""The transfer study's records: one row per downstream run (a linear summary gives one row per
seed), checked (known modes, fractions in [0, 1], no duplicated run) and sorted.

Apart from the tables and figures (:mod:`.report`), so that editing plotting code never reruns
the records job. Only pandas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..base.records import records_frame, write_frame

__all__ = ["COLUMNS", "KEYS", "check_records", "read_records", "records_from_summaries", "write_records"]

COLUMNS = (
    "upstream_dataset",
    "model",
    "upstream",
    "sparsity",
    "measured_sparsity",
    "mode",
    "dataset",
    "seed",
    "top1",
    "mean_per_class",
)
KEYS = ("upstream_dataset", "model", "upstream", "sparsity", "mode", "dataset", "seed")  # one run
SORT = ("model", "mode", "upstream", "sparsity", "dataset", "seed", "upstream_dataset")
MODES = ("linear", "full")  # transfer modes, in display order
SCRATCH = "scratch"
MEAN = "mean"


def records_from_summaries(runs: Sequence[tuple[Mapping[str, Any], str | Path]]) -> list[dict[str, Any]]:
    """Flat record rows from ``[keys, summary.json]`` pairs: a linear summary gives one row per seed."""
    rows = []
    for keys, path in runs:
        summary = json.loads(Path(path).read_text())
        measured = summary.get("backbone_sparsity")
        if keys["mode"] == "linear":
            for seed, m in summary["seeds"].items():
                rows.append(
                    {
                        **keys,
                        "seed": int(seed),
                        "top1": m["top1"],
                        "mean_per_class": m["mean_per_class"],
                        "measured_sparsity": measured,
                    }
                )
        else:
            rows.append(
                {
                    **keys,
                    "top1": summary["top1"],
                    "mean_per_class": summary["mean_per_class"],
                    "measured_sparsity": measured,
                }
            )
    return rows


def check_records(records: pd.DataFrame) -> None:
    missing = set(COLUMNS) - set(records.columns)
    if missing:
        raise ValueError(f"transfer records lack columns {sorted(missing)}")
    bad = set(records["mode"]) - {*MODES, SCRATCH}
    if bad:
        raise ValueError(f"transfer records: unknown mode(s) {sorted(bad)} (linear | full | scratch)")
    mismatch = records[(records["mode"] == SCRATCH) != (records["upstream"] == SCRATCH)]
    if len(mismatch):
        row = mismatch.iloc[0]
        raise ValueError(
            f"transfer records: mode {row['mode']!r} with upstream {row['upstream']!r}: "
            "mode scratch goes with upstream scratch and only with it"
        )
    if (records["dataset"] == MEAN).any():
        raise ValueError(f"transfer records: a downstream dataset may not be called {MEAN!r} (the dataset average)")
    for metric in ("top1", "mean_per_class"):
        values = pd.to_numeric(records[metric], errors="coerce")
        if ((values < 0) | (values > 1)).any():
            raise ValueError(f"transfer records: {metric} is a fraction in [0, 1]")
    dup = records.duplicated(list(KEYS), keep=False)
    if dup.any():
        row = records[dup].iloc[0]
        raise ValueError("transfer records: two runs with the same keys " + ", ".join(f"{k}={row[k]!r}" for k in KEYS))


def write_records(rows: Sequence[Mapping[str, Any]], records_csv: str | Path) -> pd.DataFrame:
    """One row per downstream run, ``COLUMNS`` first (extras after, by name), sorted by model, mode,
    upstream, sparsity, dataset and seed (then upstream dataset). Duplicated runs are an error."""
    df = records_frame(rows, columns=COLUMNS)
    check_records(df)
    df = df[[*COLUMNS, *sorted(c for c in df.columns if c not in COLUMNS)]]
    return write_frame(df.sort_values(list(SORT), kind="stable").reset_index(drop=True), records_csv)


def read_records(records_csv: str | Path) -> pd.DataFrame:
    records = pd.read_csv(
        records_csv, dtype={"upstream_dataset": str, "model": str, "upstream": str, "mode": str, "dataset": str}
    )
    check_records(records)
    return records
