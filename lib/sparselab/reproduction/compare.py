"""The reproduction table: each published value of the run's config beside our mean ± std over seeds,
the difference and whether the published value lies within our spread.

Agreement: |published − mean| ≤ k·std + half a unit of the published value's last printed decimal
(a value printed as 91.2 is only known to ±0.05). std is the sample std (ddof 1) over our seeds; with
one seed there is no spread and the row says so instead of judging. The CSV keeps the records' units
(fractions), the Markdown gives percentages. Only pandas (and the atomic writes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..io.atomic import atomic_write_text
from .ledger import SOURCES, UNITS, PublishedRow

__all__ = ["COLUMNS", "compare", "nothing_compared_markdown", "read_source", "table_markdown", "write_table"]

COLUMNS = (
    "paper",
    "config",
    "study",
    "setting",
    "dataset",
    "model",
    "method",
    "sparsity",
    "metric",
    "published",
    "published_spread",
    "seeds",
    "mean",
    "std",
    "difference",
    "tolerance",
    "within",
    "source",
)
YES, NO, ONE_SEED, NOT_PLANNED = "yes", "no", "one seed: no spread", "not planned by this config"


def read_source(name: str, records: str | Path | None = None, summaries: Sequence[Sequence[Any]] = ()) -> pd.DataFrame:
    """One source's runs with the ledger's key columns (dataset, model, method, sparsity) and its metrics:
    the rows of its records CSV it keeps (transfer: one mode), or its runs' summary.json files."""
    source = next(s for s in SOURCES.values() if s.name == name)
    if records is not None:
        df = pd.read_csv(records)
        for col, value in source.where.items():
            df = df[df[col].astype(str) == value]
    else:
        df = pd.DataFrame([{**keys, **json.loads(Path(path).read_text())} for keys, path in summaries])
    columns = {col: key for key, col in source.columns.items()}
    out = pd.DataFrame({key: df[col] for col, key in columns.items()})
    for metric in source.metrics:
        out[metric] = pd.to_numeric(df[metric], errors="coerce") if metric in df else float("nan")
    return out.reset_index(drop=True)


def _judge(row: PublishedRow, values: list[float], k: float) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = pd.Series(values).std(ddof=1) if n > 1 else math.nan
    difference = mean - row.value if n else math.nan
    if n == 0:
        return {
            "seeds": 0,
            "mean": mean,
            "std": std,
            "difference": difference,
            "tolerance": math.nan,
            "within": NOT_PLANNED,
        }
    if n == 1:
        return {
            "seeds": 1,
            "mean": mean,
            "std": std,
            "difference": difference,
            "tolerance": math.nan,
            "within": ONE_SEED,
        }
    tolerance = k * float(std) + row.rounding
    within = YES if abs(difference) <= tolerance else NO
    return {
        "seeds": n,
        "mean": mean,
        "std": float(std),
        "difference": difference,
        "tolerance": tolerance,
        "within": within,
    }


def compare(rows: Sequence[PublishedRow], runs: Mapping[str, pd.DataFrame], k: float) -> pd.DataFrame:
    """One line per published row, in the ledger's unit: our mean and std over the matching runs
    (every seed), the difference (ours − published), the tolerance k·std + rounding, and the verdict."""
    lines = []
    for row in rows:
        scale = UNITS[row.unit]
        df = runs.get(row.record_source.name)
        values: list[float] = []
        if df is not None and len(df):
            hit = df[
                (df["dataset"].astype(str) == row.dataset)
                & (df["model"].astype(str) == row.model)
                & (df["method"].astype(str) == row.method)
                & ((pd.to_numeric(df["sparsity"]) - row.sparsity).abs() < 1e-9)
            ]
            values = [scale * float(v) for v in hit[row.metric].dropna()]
        lines.append(
            {
                **{c: getattr(row, c) for c in ("paper", "config", "study", "setting", "dataset", "model", "method")},
                "sparsity": row.sparsity,
                "metric": row.metric,
                "published": row.value,
                "published_spread": row.spread if row.spread is not None else math.nan,
                **_judge(row, values, k),
                "source": f"{row.source} ({row.section})",
            }
        )
    return pd.DataFrame(lines, columns=list(COLUMNS))


def _fmt(x: float, digits: int = 2) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def table_markdown(table: pd.DataFrame, k: float, configs: Sequence[str]) -> str:
    """The comparison in % (the ledger's unit), with a line saying how agreement is judged."""
    head = (
        f"# Reproduction: published numbers vs this run ({', '.join(configs)})\n\n"
        f"Ours: mean ± std over seeds (n). Within: |ours − published| ≤ {k:g}·std + half a unit of the "
        "published value's last decimal; one seed has no spread, so it is not judged.\n\n"
    )
    cols = "| paper | study | dataset | model | method | sparsity (%) | metric | published (%) | ours (%) | difference (pp) | within |"
    lines = [cols, "|" + "---|" * cols.count(" | ") + "---|"]
    for r in table.itertuples(index=False):
        study = f"{r.study}/{r.setting}" if r.setting else r.study
        spread = f" ± {_fmt(r.published_spread)}" if not math.isnan(r.published_spread) else ""
        ours = (
            f"{_fmt(r.mean)} ± {_fmt(r.std)} ({r.seeds})" if r.seeds > 1 else (f"{_fmt(r.mean)} (1)" if r.seeds else "")
        )
        lines.append(
            f"| {r.paper} | {study} | {r.dataset} | {r.model} | {r.method} | {100 * r.sparsity:g} | {r.metric} "
            f"| {r.published:g}{spread} | {ours} | {_fmt(r.difference)} | {r.within} |"
        )
    counts = table["within"].value_counts()
    tally = ", ".join(f"{counts.get(v, 0)} {v}" for v in (YES, NO, ONE_SEED, NOT_PLANNED) if counts.get(v, 0))
    return head + "\n".join(lines) + f"\n\n{len(table)} published values: {tally}.\n"


def nothing_compared_markdown(configs: Sequence[str], ledger: Sequence[PublishedRow]) -> str:
    """The default run's table: nothing paper-scale was run; what each paper config would compare."""
    text = (
        "# Reproduction: nothing paper-scale was run\n\n"
        "This run's config is none of the paper configs the ledger names: no published number is compared "
        "with its results (the default config trains tiny models on digits). "
        "Run a paper config to fill this table; the ledger (published/*.csv) holds, per config:\n\n"
        "| config | paper | study | published values | datasets | metrics |\n|---|---|---|---|---|---|\n"
    )
    groups: dict[tuple[str, str, str], list[PublishedRow]] = {}
    for r in ledger:
        groups.setdefault((r.config, r.paper, f"{r.study}/{r.setting}" if r.setting else r.study), []).append(r)
    for (config, paper, study), rows in sorted(groups.items()):
        datasets = ", ".join(sorted({r.dataset for r in rows}))
        metrics = ", ".join(sorted({r.metric for r in rows}))
        text += f"| {config} | {paper} | {study} | {len(rows)} | {datasets} | {metrics} |\n"
    return text


def write_table(
    ledger: Sequence[PublishedRow],
    configs: Sequence[str],
    k: float,
    records: Mapping[str, str],
    summaries: Mapping[str, Sequence[Sequence[Any]]],
    table_csv: str | Path,
    table_md: str | Path,
) -> pd.DataFrame:
    """Compare the ledger rows of ``configs`` with the regenerated runs (``records``: source name ->
    records CSV; ``summaries``: source name -> [keys, summary.json]) and write both tables."""
    rows = [r for r in ledger if r.config in set(configs)]
    runs = {name: read_source(name, records=path) for name, path in records.items()}
    runs.update({name: read_source(name, summaries=s) for name, s in summaries.items()})
    table = compare(rows, runs, k)
    csv_table = table.copy()
    for col in ("published", "published_spread", "mean", "std", "difference", "tolerance"):
        csv_table[col] = csv_table[col] / [UNITS[r.unit] for r in rows] if rows else csv_table[col]
    atomic_write_text(table_csv, csv_table.to_csv(index=False))
    md = table_markdown(table, k, configs) if rows else nothing_compared_markdown(configs, ledger)
    atomic_write_text(table_md, md)
    return table
