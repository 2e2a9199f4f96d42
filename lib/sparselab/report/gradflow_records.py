"""The gradient-flow study's records: one row per finished run (its final summary) and per dense
baseline, keys first. Apart from the tables and figures (:mod:`.gradflow`), so that editing
plotting code never reruns the records job. Only pandas.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

__all__ = ["KEYS", "records_from"]

KEYS = ("dataset", "model", "measure", "target", "seed")


def records_from(summaries: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per (keys, summary) pair, keys first; nested fields (widths) are dropped."""
    rows = []
    for keys, summary in summaries:
        rows.append({**keys, **{k: v for k, v in summary.items() if not isinstance(v, (dict, list))}})
    df = pd.DataFrame(rows)
    return df[[*KEYS, *[c for c in df.columns if c not in KEYS]]]
