"""The published numbers of the papers our configs reproduce, one CSV per source under ``published/``,
and where each study's regenerated results are (the matching keys per study, in one place).

Standard library only: the rules read the ledger at parse time to know which records a comparison
needs. Every row names its source (paper table or figure, or repository file) and the note section it
was read in, and the config that should reproduce it (``configs/x.yaml``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "COLUMNS",
    "LEDGER_DIR",
    "SOURCES",
    "LedgerError",
    "PublishedRow",
    "RecordSource",
    "read_ledger",
]

LEDGER_DIR = "published"  # relative to the workflow root
COLUMNS = (
    "paper",  # who published it
    "config",  # the config that should reproduce it, relative to the workflow root
    "study",  # the study whose records hold our value
    "setting",  # a study's sub-table (transfer: linear | full | upstream); empty for the others
    "dataset",  # the config's dataset key (the downstream dataset for transfer)
    "model",  # the config's model key
    "method",  # the study's method (transfer: the upstream's name)
    "sparsity",  # a fraction, as the config states it
    "metric",  # a column of the study's records
    "value",  # the published value, in ``unit``
    "spread",  # the published ± (empty when the source gives none)
    "n",  # runs behind the published value (empty when not stated)
    "unit",  # % (our records hold fractions)
    "source",  # paper + table/figure, or repository + file
    "section",  # where the value was read (the reference notes' section)
    "notes",
)
REQUIRED = (
    "paper",
    "config",
    "study",
    "dataset",
    "model",
    "method",
    "sparsity",
    "metric",
    "value",
    "unit",
    "source",
    "section",
)
UNITS = {"%": 100.0}  # unit -> factor from the records' fractions


class LedgerError(ValueError):
    """A ledger row that cannot be used; the message names the file, line and column."""


@dataclasses.dataclass(frozen=True)
class RecordSource:
    """Where a study's regenerated values are: the plan method listing its runs as ``[keys, path]``,
    the records CSV its report job reads (None: the runs' ``summary.json`` files themselves), which
    records column each ledger key matches, fixed column values, and the metrics it has."""

    study: str
    setting: str
    runs: str  # the study plan's method giving [keys, summary path] per run
    records: str | None
    columns: Mapping[str, str]  # ledger key -> records column
    where: Mapping[str, str]  # records column -> the value this source keeps
    metrics: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.study}/{self.setting}" if self.setting else self.study


_DST = {"dataset": "dataset", "model": "model", "method": "method", "sparsity": "sparsity"}
_TRANSFER = {"dataset": "dataset", "model": "model", "method": "upstream", "sparsity": "sparsity"}
_UPSTREAM = {"dataset": "upstream_dataset", "model": "model", "method": "upstream", "sparsity": "sparsity"}
_TRANSFER_RECORDS = "results/transfer/summary/records.csv"
SOURCES: dict[tuple[str, str], RecordSource] = {
    ("dst", ""): RecordSource("dst", "", "summaries", "results/dst/summary/records.csv", _DST, {}, ("test_top1",)),
    **{
        ("transfer", mode): RecordSource(
            "transfer", mode, "summaries", _TRANSFER_RECORDS, _TRANSFER, {"mode": mode}, ("top1", "mean_per_class")
        )
        for mode in ("linear", "full")
    },
    # the ImageNet top-1 of the upstreams trained here (AC/DC, GMP, RigL): their summary.json files
    ("transfer", "upstream"): RecordSource(
        "transfer", "upstream", "upstream_summaries", None, _UPSTREAM, {}, ("test_top1",)
    ),
}


@dataclasses.dataclass(frozen=True)
class PublishedRow:
    paper: str
    config: str
    study: str
    setting: str
    dataset: str
    model: str
    method: str
    sparsity: float
    metric: str
    value: float
    spread: float | None
    n: int | None
    unit: str
    source: str
    section: str
    notes: str
    decimals: int  # printed decimals of the published value: it is known to half a unit of the last one
    origin: str  # file:line

    @property
    def record_source(self) -> RecordSource:
        return SOURCES[(self.study, self.setting)]

    @property
    def rounding(self) -> float:
        """Half a unit of the published value's last printed decimal."""
        return 0.5 * 10.0**-self.decimals

    def key(self) -> tuple[str, str, str, str, str, float, str]:
        return (self.study, self.setting, self.dataset, self.model, self.method, round(self.sparsity, 9), self.metric)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LedgerError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LedgerError(f"{where}: {column} {text!r} is not a finite number")
    return value


def _row(raw: Mapping[str, str], where: str, root: Path | None) -> PublishedRow:
    cells = {c: (raw.get(c) or "").strip() for c in COLUMNS}
    for column in REQUIRED:
        if not cells[column]:
            raise LedgerError(f"{where}: column {column!r} is empty (every published number names its source)")
    source = SOURCES.get((cells["study"], cells["setting"]))
    if source is None:
        known = ", ".join(f"{s}/{t}" if t else s for s, t in SOURCES)
        raise LedgerError(
            f"{where}: study/setting {cells['study']}/{cells['setting']} has no records here (known: {known})"
        )
    if cells["metric"] not in source.metrics:
        raise LedgerError(
            f"{where}: metric {cells['metric']!r} is not in {source.name}'s records (one of {', '.join(source.metrics)})"
        )
    if cells["unit"] not in UNITS:
        raise LedgerError(f"{where}: unit {cells['unit']!r} (use one of {', '.join(UNITS)})")
    if root is not None and not (root / cells["config"]).is_file():
        raise LedgerError(f"{where}: config {cells['config']!r} does not exist")
    value = cells["value"]
    sparsity = _number(cells["sparsity"], where, "sparsity")
    if not 0.0 <= sparsity < 1.0:
        raise LedgerError(f"{where}: sparsity {cells['sparsity']} is a fraction in [0, 1)")
    n = cells["n"]
    if n and not n.isdigit():
        raise LedgerError(f"{where}: n {n!r} is a count of runs (or empty)")
    return PublishedRow(
        paper=cells["paper"],
        config=cells["config"],
        study=cells["study"],
        setting=cells["setting"],
        dataset=cells["dataset"],
        model=cells["model"],
        method=cells["method"],
        sparsity=sparsity,
        metric=cells["metric"],
        value=_number(value, where, "value"),
        spread=_number(cells["spread"], where, "spread") if cells["spread"] else None,
        n=int(n) if n else None,
        unit=cells["unit"],
        source=cells["source"],
        section=cells["section"],
        notes=cells["notes"],
        decimals=len(value.split(".", 1)[1]) if "." in value else 0,
        origin=where,
    )


def read_ledger(paths: Iterable[str | Path], root: str | Path | None = None) -> list[PublishedRow]:
    """Every row of the ledger files, checked: the header, a source for every number, a known study,
    setting and metric, a config that exists under ``root`` (when given), no row twice."""
    rows: list[PublishedRow] = []
    seen: dict[tuple[object, ...], str] = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise LedgerError(f"{path}: the header must be {','.join(COLUMNS)}")
            for line, raw in enumerate(reader, start=2):
                row = _row(raw, f"{path}:{line}", Path(root) if root is not None else None)
                key = (row.config, *row.key())
                if key in seen:
                    raise LedgerError(
                        f"{row.origin}: the same published value as {seen[key]} (one row per config and run)"
                    )
                seen[key] = row.origin
                rows.append(row)
    return rows
