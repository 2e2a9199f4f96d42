"""The gradient-flow study's records: one row per finished run (its final summary) and per dense
baseline, keys first. Apart from the tables and figures (:mod:`.gradflow`), so that editing
plotting code never reruns the records job. Only pandas.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from ..studies.base.records import flat_row, records_frame

__all__ = ["KEYS", "records_from"]

KEYS = ("dataset", "model", "measure", "target", "seed")


def records_from(summaries: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per (keys, summary) pair, keys first; nested fields (widths) are dropped."""
    return records_frame([flat_row(keys, summary) for keys, summary in summaries], first=KEYS)
