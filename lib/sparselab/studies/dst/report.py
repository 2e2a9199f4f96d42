"""Tables and figures of the dynamic sparse training study (Mostafa & Wang, ICML 2019).

Inputs: ``records.csv`` and ``layer_density.csv``, written from every run's ``summary.json`` by
:mod:`.records`. Only pandas, seaborn and matplotlib (no torch).

* **Accuracy vs parameters** (the paper's main figure): test top-1 against learnable parameters
  (log axis), one line per method, mean ± std over seeds, a panel per dataset x model.
* **Accuracy table**: test top-1 (%) per method x sparsity (%), mean ± std over seeds, with
  learnable (alive) parameters, FLOPs of one forward pass with masked weights skipped, ShrinkBench's
  theoretical speed-up over the dense network, and the entries RigL/SNFS dropped over the run.
* **Per-layer density**: the density (%) every sparse tensor ends with, a bar per method side by side
  for each named layer (methods that keep each layer's density, as static, SET and DeepR, would hide
  each other as lines), a panel per dataset x model x sparsity.

Every method has one colour in both figures (fixed by ``COLOUR_SLOTS``: adding a method never
recolours the others).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ...io.atomic import atomic_write_text
from ...report.figures import log_axis, save_figure  # also selects the headless Agg backend
from .records import KEYS, write_records

__all__ = ["KEYS", "accuracy_table", "accuracy_table_markdown", "write_records", "write_report"]

METHOD_ORDER = ("dense", "thin_dense", "static", "tied", "deepr", "set", "dsr", "snfs", "rigl", "gradual")
# tab10 slots: the methods before RigL and SNFS keep the colours they always had
COLOUR_SLOTS = ("dense", "thin_dense", "static", "tied", "deepr", "set", "dsr", "gradual", "snfs", "rigl")


def _order(methods: Sequence[str]) -> list[str]:
    return [m for m in METHOD_ORDER if m in set(methods)] + sorted(set(methods) - set(METHOD_ORDER))


def method_colours(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A fixed colour per method (by its place in ``COLOUR_SLOTS``), the same in every figure."""
    colours = sns.color_palette("tab10", 10)
    extra = sorted(set(methods) - set(COLOUR_SLOTS))
    slot = {m: i for i, m in enumerate([*COLOUR_SLOTS, *extra])}
    return {m: colours[slot[m] % len(colours)] for m in _order(methods)}


def _percent(fraction: float) -> str:
    return f"{round(100 * float(fraction), 6):g}"


# records column -> table column (mean over seeds); absent columns (records of summaries written
# before they existed, or dropped_total for the methods that do not drop and grow) come out empty
COST_COLUMNS = {
    "flops_sparse": "flops",
    "theoretical_speedup": "speedup",
    "dropped_total": "dropped",
}


def accuracy_table(records: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of test top-1 (%), and the mean learnable parameters, FLOPs (masked
    weights skipped), theoretical speed-up and entries dropped per method x sparsity."""
    df = records.assign(test_top1=100 * records["test_top1"])
    df = df.assign(**{c: pd.Series(float("nan"), index=df.index) for c in COST_COLUMNS if c not in df})
    agg = (
        df.groupby(["dataset", "model", "method", "sparsity"], sort=False)
        .agg(
            seeds=("seed", "nunique"),
            test_top1_mean=("test_top1", "mean"),
            test_top1_std=("test_top1", "std"),
            parameters=("learnable_parameters", "mean"),
            **{out: (col, "mean") for col, out in COST_COLUMNS.items()},
        )
        .reset_index()
    )
    agg["_m"] = agg["method"].map({m: i for i, m in enumerate(_order(list(agg["method"])))})
    agg = agg.sort_values(["dataset", "model", "_m", "sparsity"], kind="stable").drop(columns="_m")
    return agg.fillna({"test_top1_std": 0.0}).reset_index(drop=True)


def accuracy_table_markdown(table: pd.DataFrame) -> str:
    rows = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "model": table["model"],
            "method": table["method"],
            "sparsity (%)": [
                "—" if m in ("dense",) else _percent(s) for m, s in zip(table["method"], table["sparsity"])
            ],
            "seeds": table["seeds"],
            "learnable parameters": [f"{p:,.0f}" for p in table["parameters"]],
            "FLOPs (sparse)": [_number(f, "{:,.0f}") for f in table["flops"]],
            "theoretical speed-up": [_number(x, "{:.2f}×") for x in table["speedup"]],
            "dropped (total)": [_number(d, "{:,.0f}") for d in table["dropped"]],
            "test top-1 (%)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(table["test_top1_mean"], table["test_top1_std"])],
        }
    )
    return rows.to_markdown(index=False, disable_numparse=True, colalign=["left"] * 3 + ["right"] * 7) + "\n"


def _number(value: float, fmt: str) -> str:
    return "—" if pd.isna(value) else fmt.format(value)


def accuracy_vs_parameters(records: pd.DataFrame, title: str = "") -> sns.FacetGrid:
    """Test top-1 (%) against learnable parameters (log axis, at least two labelled ticks), a line
    per method (``dense`` included: one point), mean ± std over seeds, a panel per dataset x model."""
    df = records.assign(test_top1=100 * records["test_top1"], panel=records["dataset"] + " · " + records["model"])
    order = _order(list(df["method"]))
    grid = sns.FacetGrid(
        df, col="panel", col_wrap=min(3, df["panel"].nunique()), height=3.4, aspect=1.3, sharex=False, sharey=False
    )
    grid.map_dataframe(
        sns.lineplot,
        x="learnable_parameters",
        y="test_top1",
        hue="method",
        hue_order=order,
        palette=method_colours(order),
        style="method",
        style_order=order,
        markers=True,
        dashes=False,
        errorbar="sd",
        err_style="bars",
    )
    for ax in grid.axes.flat:
        log_axis(ax, "x")
    grid.set_axis_labels("learnable parameters (log scale)", "test top-1 (%)")
    grid.set_titles("{col_name}")
    grid.add_legend(title="method")
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid


def layer_density_figure(densities: pd.DataFrame, title: str = "") -> plt.Figure:
    """Final density (%) of every sparse tensor, named on the x axis in model order: a bar per method
    side by side (mean over seeds, error bar = std), a panel per dataset x model x sparsity, and the
    density of all sparse tensors together (100 - sparsity) as a dashed line."""
    df = densities.assign(density_pct=100 * densities["density"], layer_name=densities["layer"].astype(str))
    order = _order(list(df["method"]))
    colours = method_colours(order)
    panels = list(dict.fromkeys(zip(df["dataset"], df["model"], df["sparsity"])))
    n_layers = int(df.groupby(["dataset", "model"])["layer_index"].nunique().max())
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    width = max(4.2, 0.14 * n_layers * len(order) + 1.2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.4 * nrows), squeeze=False, layout="constrained")
    for ax, (dataset, model, sparsity) in zip(axes.flat, panels):
        sub = df[(df["dataset"] == dataset) & (df["model"] == model) & (df["sparsity"] == sparsity)]
        layers = list(sub.sort_values("layer_index")["layer_name"].drop_duplicates())
        here = [m for m in order if (sub["method"] == m).any()]
        sns.barplot(
            data=sub,
            x="layer_name",
            y="density_pct",
            hue="method",
            order=layers,
            hue_order=here,
            palette=colours,
            errorbar="sd",
            capsize=0.1,
            err_kws={"linewidth": 0.8},
            ax=ax,
            legend=False,
        )
        ax.axhline(100 * (1 - float(sparsity)), color="0.3", lw=1.0, ls="--", zorder=0)
        ax.set_title(f"{dataset} · {model} · sparsity {_percent(sparsity)}%")
        ax.set_xlabel("")
        ax.set_ylabel("final density (%)")
        if len(layers) > 6:
            ax.tick_params(axis="x", labelrotation=90)
        sns.despine(ax=ax)
    for ax in list(axes.flat)[len(panels) :]:
        fig.delaxes(ax)
    handles: list[Artist] = [Patch(facecolor=colours[m], label=m) for m in order]
    handles.append(Line2D([], [], color="0.3", lw=1.0, ls="--", label="all sparse tensors\n(100 − sparsity)"))
    fig.legend(handles=handles, title="method", loc="outside right center", frameon=False)
    fig.supxlabel("sparse tensor (parameter name, in model order)")
    if title:
        fig.suptitle(title)
    return fig


def write_report(
    records_csv: str | Path,
    densities_csv: str | Path,
    *,
    table_csv: str | Path,
    table_md: str | Path,
    figure_pdf: str | Path,
    figure_png: str | Path,
    density_pdf: str | Path,
    density_png: str | Path,
    title: str = "",
) -> None:
    records = pd.read_csv(records_csv)
    table = accuracy_table(records)
    atomic_write_text(table_csv, table.to_csv(index=False))
    atomic_write_text(table_md, (f"# {title}\n\n" if title else "") + accuracy_table_markdown(table))
    grid = accuracy_vs_parameters(records, title)
    save_figure(grid.figure, figure_pdf, figure_png)
    plt.close(grid.figure)
    densities = pd.read_csv(densities_csv)
    if densities.empty:  # only dense runs: an empty panel that says so
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.text(0.5, 0.5, "no sparse runs", ha="center", va="center")
        ax.set_axis_off()
        save_figure(fig, density_pdf, density_png)
        plt.close(fig)
        return
    fig = layer_density_figure(densities, title)
    save_figure(fig, density_pdf, density_png)
    plt.close(fig)
