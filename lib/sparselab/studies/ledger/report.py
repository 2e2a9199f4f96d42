"""The complexity ledger's summary (rule ``ledger_report``): every study's measured rows as one
``checkpoints.csv``, Kendall's τ of each measure with the generalisation gap (overall and per
study: CSV + Markdown) and the figure (measure vs gap, a panel per measure, colour = study).
pandas and matplotlib only (no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ...io.atomic import atomic_write_text
from ...report.figures import compact_number, log_axis, save_figure  # also selects the headless Agg backend
from ..base.records import write_frame
from .kendall import kendall_tau_b

__all__ = ["kendall_table", "kendall_markdown", "write_report"]

# measures drawn on a linear axis (the others span orders of magnitude across models and datasets)
LINEAR_MEASURES = frozenset({"sparsity"})
# a measure's column in the ledger where the names differ: ``sparsity`` is the measured one (the
# ``sparsity`` column is the plan's nominal value, 0 for a dense model whatever it holds)
COLUMNS = {"sparsity": "measured_sparsity"}


def measure_values(ledger: pd.DataFrame, measure: str) -> pd.Series:
    """A measure's numbers (NaN where a checkpoint has none, or the ledger lacks the column)."""
    column = COLUMNS.get(measure, measure)
    if column not in ledger:
        return pd.Series(float("nan"), index=ledger.index)
    return pd.to_numeric(ledger[column], errors="coerce")


def kendall_table(ledger: pd.DataFrame, measures: Sequence[str]) -> pd.DataFrame:
    """One row per measure and scope (``all``, then each study): τ-b with the gap and the number
    of checkpoints that have both values."""
    rows = []
    scopes = [("all", ledger)] + [(s, g) for s, g in ledger.groupby("study", sort=False)]
    for measure in measures:
        for scope, frame in scopes:
            x = measure_values(frame, measure)
            y = pd.to_numeric(frame["gap"], errors="coerce")
            n = int((x.notna() & y.notna()).sum())
            rows.append({"measure": measure, "scope": scope, "tau": kendall_tau_b(x, y) if n else float("nan"), "n": n})
    return pd.DataFrame(rows, columns=["measure", "scope", "tau", "n"])


def kendall_markdown(table: pd.DataFrame, title: str) -> str:
    """τ per measure (rows) and scope (columns), with each scope's checkpoint count in its header."""
    scopes = list(dict.fromkeys(table["scope"]))
    counts = table.groupby("scope", sort=False)["n"].max()
    header = ["measure", *[f"{s} (n≤{counts[s]})" for s in scopes]]
    lines = [f"# {title}: Kendall τ-b with the generalisation gap (train − test top-1)", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for measure, group in table.groupby("measure", sort=False):
        tau = dict(zip(group["scope"], group["tau"]))
        lines.append(
            "| " + " | ".join([str(measure), *("" if pd.isna(tau[s]) else f"{tau[s]:+.2f}" for s in scopes)]) + " |"
        )
    lines += ["", "Empty: fewer than two checkpoints with the measure, or a constant measure or gap."]
    return "\n".join(lines) + "\n"


def ledger_figure(ledger: pd.DataFrame, measures: Sequence[str], title: str, pdf: str | Path, png: str | Path) -> None:
    import matplotlib.pyplot as plt
    import seaborn as sns

    studies = list(dict.fromkeys(ledger["study"]))
    colours = dict(zip(studies, sns.color_palette("tab10", max(len(studies), 1))))
    cols = min(4, len(measures))
    rows = -(-len(measures) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False, sharey=True)
    gap = pd.to_numeric(ledger["gap"], errors="coerce")
    for ax, measure in zip(axes.flat, measures):
        x = measure_values(ledger, measure)
        for study in studies:
            keep = (ledger["study"] == study) & x.notna() & gap.notna()
            ax.scatter(x[keep], 100 * gap[keep], s=12, alpha=0.75, color=colours[study], label=study)
        ax.set_xlabel("measured sparsity" if measure == "sparsity" else measure)
        positive = x[x > 0]
        if (
            measure not in LINEAR_MEASURES
            and len(positive)
            and (x.dropna() > 0).all()
            and positive.max() > 2 * positive.min()
        ):  # scientific labels past 1e6 (1e17 has no compact name), compact ones below
            log_axis(ax, "x", formatter=None if positive.max() >= 1e6 else compact_number)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("gap: train − test top-1 (%)")
    for ax in list(axes.flat)[len(measures) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(studies), bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.suptitle(title, y=1.05)
    fig.tight_layout()
    save_figure(fig, pdf, png)


def write_report(
    parts: Sequence[str | Path],
    measures: Sequence[str],
    title: str,
    *,
    ledger_csv: str | Path,
    kendall_csv: str | Path,
    kendall_md: str | Path,
    figure_pdf: str | Path,
    figure_png: str | Path,
) -> pd.DataFrame:
    """The ledger from every study's part, its τ table and figure."""
    ledger = pd.concat([pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in parts], ignore_index=True)
    write_frame(ledger, ledger_csv)
    table = kendall_table(ledger, measures)
    write_frame(table, kendall_csv)
    atomic_write_text(kendall_md, kendall_markdown(table, title))
    ledger_figure(ledger, measures, title, figure_pdf, figure_png)
    return ledger
