"""The columns that name a gradient-flow run in ``records.csv`` and in the report's tables and
figures (standard library only): the records job and the report both read them, so neither
module imports the other and a plotting edit never reruns the records job."""

from __future__ import annotations

KEYS = ("dataset", "model", "measure", "target", "seed")
