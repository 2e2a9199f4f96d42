"""The one-shot study's figure: test top-1 vs sparsity, after pruning and after finetuning, from its
``records.csv`` (apart from the table, :mod:`.report`, so that a plotting edit never reruns it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from ...report.figures import save_figure  # also selects the headless Agg backend


def accuracy_figure(records: pd.DataFrame, *, title: str = "") -> sns.FacetGrid:
    """Test top-1 vs target sparsity, one panel per dataset/model; error bars are the std over seeds.

    Solid lines: after finetuning; dashed: right after pruning. The dense model is a grey line.
    """
    pruned = records[records["scope"] != "dense"]
    dense = records[records["scope"] == "dense"]
    long = pd.concat(
        [
            pruned.assign(stage="after finetuning", top1=100 * pruned["test_top1"]),
            pruned.assign(stage="after pruning", top1=100 * pruned["start_test_top1"]),
        ],
        ignore_index=True,
    ).dropna(subset=["top1"])
    long["panel"] = long["dataset"] + " / " + long["model"]
    grid = sns.relplot(
        data=long, kind="line", x="sparsity", y="top1", hue="scope", style="stage",
        col="panel", col_wrap=min(3, long["panel"].nunique()), markers=True, dashes={"after finetuning": "", "after pruning": (4, 2)},
        errorbar="sd", height=3.2, aspect=1.2, facet_kws={"sharey": False},
    )  # fmt: skip
    for panel, ax in grid.axes_dict.items():
        dataset, model = panel.split(" / ", 1)
        base = dense[(dense["dataset"] == dataset) & (dense["model"] == model)]["test_top1"]
        if len(base):
            ax.axhline(100 * base.mean(), color="0.5", lw=1, ls=":", label="dense")
        ax.set_title(panel)
    grid.set_axis_labels("target sparsity", "test top-1 (%)")
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid


def write_accuracy_figure(records_csv: str | Path, pdf: str | Path, png: str | Path, title: str = "") -> None:
    grid = accuracy_figure(pd.read_csv(records_csv), title=title)
    save_figure(grid.figure, pdf, png)
