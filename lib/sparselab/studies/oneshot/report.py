"""The one-shot study's tables, mean and std over seeds, as CSV for machines and Markdown for
people, from its ``records.csv``: accuracy vs sparsity of every run (with alive parameters, FLOPs
and the theoretical speed-up), and N:M vs unstructured vs dense (:func:`nm_table`). Its figure is
:mod:`.figure` (apart, so that a plotting edit never reruns the table jobs). The complexity columns
come from the evaluation records (:mod:`sparselab.metrics.checkpoint_eval`), never recomputed here."""

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
    metrics = [
        "test_top1",
        "test_top5",
        "start_test_top1",
        "weight_sparsity",
        "params_nonzero",
        "params_total",
        *COMPLEXITY,
    ]
    return summarise(records, ["dataset", "model", "scope", "sparsity"], metrics)


# The complexity columns of an evaluation record (metrics.checkpoint_eval.complexity_record).
COMPLEXITY = ("params_alive", "flops", "flops_sparse", "theoretical_speedup", "flops_nm")


def _count(value: float) -> str:
    return "" if pd.isna(value) else f"{value:,.0f}"


def _speedup(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.2f}×"


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
            "alive params": _col(summary, "params_alive_mean").map(_count),
            "FLOPs": _col(summary, "flops_mean").map(_count),
            "theoretical speed-up": _col(summary, "theoretical_speedup_mean").map(_speedup),
            "top-1 after pruning (%)": [
                pm(m, s) for m, s in zip(_col(summary, "start_test_top1_mean"), _col(summary, "start_test_top1_std"))
            ],
            "top-1 after finetuning (%)": [
                pm(m, s) for m, s in zip(summary["test_top1_mean"], summary["test_top1_std"])
            ],
            "seeds": summary["n_seeds"],
        }
    )
    return view.to_markdown(index=False, disable_numparse=True, colalign=["left"] * 3 + ["right"] * 9) + "\n"


def write_accuracy_table(records_csv: str | Path, out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    summary = accuracy_vs_sparsity(pd.read_csv(records_csv))
    atomic_write_with(out_csv, lambda tmp: summary.to_csv(tmp, index=False))
    atomic_write_text(out_md, to_markdown(summary))
    return summary


# The rows of the N:M table, in order: scope -> label ({nm}: the pattern, e.g. 2:4).
NM_ROWS = {
    "dense": "dense",
    "layerwise": "unstructured layerwise",
    "global": "unstructured global",
    "nm_oneshot": "{nm} one-shot",
    "nm_srste": "{nm} SR-STE",
}

NM_NOTE = (
    "FLOPs: one forward pass at batch 1 as computed (dense count). FLOPs (N:M kernels): what semi-structured "
    "kernels execute, a Linear layer whose mask is N:M at N/M of its FLOPs; convolutions have no "
    "semi-structured kernel in PyTorch (torch.sparse.to_sparse_semi_structured takes Linear weights "
    "only), so they count dense even when their masks are N:M. Theoretical speed-up: ShrinkBench's "
    "dense FLOPs over FLOPs with every masked weight skipped, which no dense-hardware kernel realises. "
    "Measured 2:4 speed-ups come from bench/speedup.py on a CUDA GPU (compute capability 8.0 or newer), "
    "not from this table. Layers left dense: prunable weights whose input size is not a multiple of M."
)


def nm_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x model with N:M runs: dense, unstructured (layerwise, global) at the N:M
    sparsity 1 - N/M, N:M one-shot and SR-STE; accuracy and complexity, mean and std over seeds."""
    if "nm" not in records.columns:
        return pd.DataFrame()
    nm_runs = records[records["scope"].isin(["nm_oneshot", "nm_srste"])]
    parts = []
    for (dataset, model), runs in nm_runs.groupby(["dataset", "model"], sort=True):
        mine = records[(records["dataset"] == dataset) & (records["model"] == model)]
        sparsities = set(runs["sparsity"])
        keep = (mine["scope"] == "dense") | (mine["scope"].isin(NM_ROWS) & mine["sparsity"].isin(sparsities))
        parts.append(mine[keep])
    if not parts:
        return pd.DataFrame()
    chosen = pd.concat(parts, ignore_index=True)
    text = {c: _col(chosen, c).astype(object).where(_col(chosen, c).notna(), "") for c in ("nm", "nm_dense_layers")}
    chosen = chosen.assign(**text)
    metrics = ["test_top1", "test_loss", "weight_sparsity", "params_alive", "params_total", *COMPLEXITY[1:]]
    out = summarise(chosen, ["dataset", "model", "scope", "sparsity", "nm", "nm_dense_layers"], metrics)
    order = {scope: i for i, scope in enumerate(NM_ROWS)}
    out = out.sort_values(
        ["dataset", "model", "scope", "sparsity"], key=lambda c: c.map(order) if c.name == "scope" else c
    )
    return out.reset_index(drop=True)


def nm_to_markdown(table: pd.DataFrame) -> str:
    """The N:M table for people, with the note that says what its FLOPs columns mean."""
    pattern = next((p for p in table["nm"] if p), "N:M") if len(table) else "N:M"
    view = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "model": table["model"],
            "method": [NM_ROWS[s].format(nm=nm or pattern) for s, nm in zip(table["scope"], table["nm"])],
            "test top-1 (%)": [pm(m, s) for m, s in zip(table["test_top1_mean"], table["test_top1_std"])],
            # top-1 moves in steps of one test image; the loss tells runs apart that tie on it
            "test loss": [
                pm(m, s, scale=1.0, digits=4) for m, s in zip(table["test_loss_mean"], table["test_loss_std"])
            ],
            "seeds": table["n_seeds"],
            "weight sparsity (%)": table["weight_sparsity_mean"].map(lambda s: f"{100 * s:.2f}"),
            "alive params": table["params_alive_mean"].map(_count),
            "FLOPs": table["flops_mean"].map(_count),
            f"FLOPs ({pattern} kernels)": table["flops_nm_mean"].map(_count),
            "theoretical speed-up": table["theoretical_speedup_mean"].map(_speedup),
            "layers left dense": [
                (", ".join(layers.split()) or "none") if scope.startswith("nm_") else ""
                for scope, layers in zip(table["scope"], table["nm_dense_layers"])
            ],
        }
    )
    body = view.to_markdown(index=False, disable_numparse=True, colalign=["left"] * 3 + ["right"] * 8 + ["left"])
    return body + "\n\n" + NM_NOTE + "\n"


def write_nm_table(records_csv: str | Path, out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    table = nm_table(pd.read_csv(records_csv))
    if table.empty:
        raise ValueError(f"{records_csv}: no N:M runs (scopes nm_oneshot, nm_srste) to tabulate")
    atomic_write_with(out_csv, lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_text(out_md, nm_to_markdown(table))
    return table
