"""The one-shot study's figure: test top-1 vs sparsity, after pruning and after finetuning, from its
``records.csv`` (apart from the table, :mod:`.report`, so that a plotting edit never reruns it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from ...report.figures import DENSE_STYLE, add_to_legend, save_figure  # also selects the headless Agg backend


def scope_labels(records: pd.DataFrame) -> pd.Series:
    """The legend's name of each run: the scope, N:M runs by their pattern (``2:4 one-shot``)."""
    pattern = records["nm"] if "nm" in records.columns else pd.Series("N:M", index=records.index)
    pattern = pattern.where(pattern.notna() & (pattern != ""), "N:M")
    names = {"nm_oneshot": "{} one-shot", "nm_srste": "{} SR-STE"}
    return pd.Series(
        [names[s].format(p) if s in names else s for s, p in zip(records["scope"], pattern)], index=records.index
    )


def accuracy_figure(records: pd.DataFrame, *, title: str = "") -> sns.FacetGrid:
    """Test top-1 (%) vs target sparsity (%), one panel per dataset/model; bands are the std over seeds.

    Solid lines: after finetuning; dashed: right after pruning. The dense model is a dotted grey
    line, in the legend as ``dense``.
    """
    pruned = records[records["scope"] != "dense"]
    pruned = pruned.assign(scope=scope_labels(pruned))
    dense = records[records["scope"] == "dense"]
    long = pd.concat(
        [
            pruned.assign(stage="after finetuning", top1=100 * pruned["test_top1"]),
            pruned.assign(stage="after pruning", top1=100 * pruned["start_test_top1"]),
        ],
        ignore_index=True,
    ).dropna(subset=["top1"])
    long["panel"] = long["dataset"] + " / " + long["model"]
    long["sparsity_pct"] = 100 * long["sparsity"]
    grid = sns.FacetGrid(
        long, col="panel", col_wrap=min(3, long["panel"].nunique()), height=3.2, aspect=1.2, sharey=False
    )
    grid.map_dataframe(
        sns.lineplot,
        x="sparsity_pct",
        y="top1",
        hue="scope",
        style="stage",
        markers=True,
        dashes={"after finetuning": "", "after pruning": (4, 2)},
        style_order=["after finetuning", "after pruning"],
        hue_order=list(dict.fromkeys(long["scope"])),
        errorbar="sd",
    )
    for panel, ax in grid.axes_dict.items():
        dataset, model = panel.split(" / ", 1)
        base = dense[(dense["dataset"] == dataset) & (dense["model"] == model)]["test_top1"]
        if len(base):
            add_to_legend(grid, "dense", ax.axhline(100 * base.mean(), **DENSE_STYLE, label="dense"))
        ax.set_title(panel)
    grid.set_axis_labels("target sparsity (%)", "test top-1 (%)")
    grid.add_legend()
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid


def write_accuracy_figure(records_csv: str | Path, pdf: str | Path, png: str | Path, title: str = "") -> None:
    grid = accuracy_figure(pd.read_csv(records_csv), title=title)
    save_figure(grid.figure, pdf, png)
