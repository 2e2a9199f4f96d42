"""The one-shot study's table: accuracy vs sparsity, mean and std over seeds, as CSV for machines
and Markdown for people, from its ``records.csv``. Its figure is :mod:`.figure` (apart, so that a
plotting edit never reruns the table job)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ...io.atomic import atomic_write_text, atomic_write_with


def summarise(records: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN for one seed) and count of each metric per group."""
    present = [m for m in metrics if m in records.columns]
    grouped = records.groupby(list(by), dropna=False, sort=True)[present]
    out = grouped.agg(["mean", "std", "count"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    n = grouped.size().rename("n_seeds")
    return pd.concat([out.drop(columns=[c for c in out.columns if c.endswith("_count")]), n], axis=1).reset_index()


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    """'mean ± std' in percent; just the mean when there is one seed."""
    if pd.isna(mean):
        return ""
    if pd.isna(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def accuracy_vs_sparsity(records: pd.DataFrame) -> pd.DataFrame:
    """The one-shot study's table: test top-1 after pruning and after finetuning per sparsity."""
    metrics = ["test_top1", "test_top5", "start_test_top1", "weight_sparsity", "params_nonzero", "params_total"]
    return summarise(records, ["dataset", "model", "scope", "sparsity"], metrics)


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(float("nan"), index=frame.index)


def to_markdown(summary: pd.DataFrame) -> str:
    """The table for people: sparsities and accuracies in %, the unit in each header (the CSV keeps fractions)."""
    view = pd.DataFrame(
        {
            "dataset": summary["dataset"],
            "model": summary["model"],
            "pruning": summary["scope"],
            "target sparsity (%)": summary["sparsity"].map(lambda s: f"{round(100 * s, 6):g}"),
            "weight sparsity (%)": summary["weight_sparsity_mean"].map(lambda s: f"{100 * s:.2f}"),
            "nonzero params": summary["params_nonzero_mean"].map(lambda s: f"{s:,.0f}"),
            "top-1 after pruning (%)": [
                pm(m, s) for m, s in zip(_col(summary, "start_test_top1_mean"), _col(summary, "start_test_top1_std"))
            ],
            "top-1 after finetuning (%)": [
                pm(m, s) for m, s in zip(summary["test_top1_mean"], summary["test_top1_std"])
            ],
            "seeds": summary["n_seeds"],
        }
    )
    return view.to_markdown(index=False, disable_numparse=True, colalign=["left"] * 3 + ["right"] * 6) + "\n"


def write_accuracy_table(records_csv: str | Path, out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    summary = accuracy_vs_sparsity(pd.read_csv(records_csv))
    atomic_write_with(out_csv, lambda tmp: summary.to_csv(tmp, index=False))
    atomic_write_text(out_md, to_markdown(summary))
    return summary
