"""The dynamic sparse training study's records: every run's ``summary.json`` as one row of
``records.csv``, and its per-layer densities as rows of ``layer_density.csv``.

Apart from the tables and figures (:mod:`.report`), so that editing plotting code never reruns the
records job. Only pandas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..base.records import flat_row
from ..base.records import write_records as write_table

__all__ = ["KEYS", "write_records"]

KEYS = ("dataset", "model", "method", "sparsity", "seed")


def write_records(
    runs: Sequence[tuple[Mapping[str, Any], str]], records_csv: str | Path, densities_csv: str | Path
) -> None:
    rows, layers = [], []
    for keys, path in runs:
        summary = json.loads(Path(path).read_text())
        rows.append(flat_row(keys, summary))
        for i, (name, density) in enumerate(summary.get("layer_density", {}).items()):
            layers.append({**keys, "layer": name, "layer_index": i, "density": density})
    write_table(rows, records_csv)
    write_table(layers, densities_csv, columns=[*KEYS, "layer", "layer_index", "density"])
