"""Tables and figures of the dynamic sparse training study (Mostafa & Wang, ICML 2019).

Inputs: ``records.csv`` and ``layer_density.csv``, written from every run's ``summary.json`` by
:mod:`.records`. Only pandas, seaborn and matplotlib (no torch).

* **Accuracy vs parameters** (the paper's main figure): test top-1 against learnable parameters
  (log axis), one line per method, mean ± std over seeds, a panel per dataset x model.
* **Accuracy table**: test top-1 (%) per method x sparsity, mean ± std over seeds, with parameters.
* **Per-layer density**: the density every sparse tensor ends with, per method and sparsity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator, NullFormatter
import pandas as pd
import seaborn as sns

from ...io.atomic import atomic_write_text
from ...report.figures import save_figure  # also selects the headless Agg backend
from .records import KEYS, write_records

__all__ = ["KEYS", "accuracy_table", "accuracy_table_markdown", "write_records", "write_report"]

METHOD_ORDER = ("dense", "thin_dense", "static", "tied", "deepr", "set", "dsr", "gradual")


def _order(methods: Sequence[str]) -> list[str]:
    return [m for m in METHOD_ORDER if m in set(methods)] + sorted(set(methods) - set(METHOD_ORDER))


def accuracy_table(records: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of test top-1 (%) and learnable parameters per method x sparsity."""
    df = records.assign(test_top1=100 * records["test_top1"])
    agg = df.groupby(["dataset", "model", "method", "sparsity"], sort=False).agg(
        seeds=("seed", "nunique"), test_top1_mean=("test_top1", "mean"), test_top1_std=("test_top1", "std"),
        parameters=("learnable_parameters", "mean"),
    ).reset_index()  # fmt: skip
    agg["_m"] = agg["method"].map({m: i for i, m in enumerate(_order(list(agg["method"])))})
    agg = agg.sort_values(["dataset", "model", "_m", "sparsity"], kind="stable").drop(columns="_m")
    return agg.fillna({"test_top1_std": 0.0}).reset_index(drop=True)


def accuracy_table_markdown(table: pd.DataFrame) -> str:
    rows = pd.DataFrame({
        "dataset": table["dataset"], "model": table["model"], "method": table["method"],
        "sparsity": ["—" if m in ("dense",) else f"{s:g}" for m, s in zip(table["method"], table["sparsity"])],
        "seeds": table["seeds"], "parameters": [f"{p:,.0f}" for p in table["parameters"]],
        "test top-1 (%)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(table["test_top1_mean"], table["test_top1_std"])],
    })  # fmt: skip
    return rows.to_markdown(index=False) + "\n"


def accuracy_vs_parameters(records: pd.DataFrame, title: str = "") -> sns.FacetGrid:
    df = records.assign(test_top1=100 * records["test_top1"], panel=records["dataset"] + " · " + records["model"])
    order = _order(list(df["method"]))
    grid = sns.FacetGrid(df, col="panel", col_wrap=min(3, df["panel"].nunique()), height=3.4, aspect=1.3, sharex=False,
                         sharey=False)  # fmt: skip
    grid.map_dataframe(sns.lineplot, x="learnable_parameters", y="test_top1", hue="method", hue_order=order,
                       style="method", style_order=order, markers=True, dashes=False, errorbar="sd")  # fmt: skip
    for ax in grid.axes.flat:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor ones overlap
    grid.set_axis_labels("learnable parameters", "test top-1 (%)")
    grid.set_titles("{col_name}")
    grid.add_legend(title="method")
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid


def layer_density_figure(densities: pd.DataFrame, title: str = "") -> sns.FacetGrid:
    df = densities.copy()
    df["panel"] = df["dataset"] + " · " + df["model"] + " · s=" + df["sparsity"].map(lambda s: f"{s:g}")
    order = _order(list(df["method"]))
    grid = sns.FacetGrid(df, col="panel", col_wrap=min(3, df["panel"].nunique()), height=3.2, aspect=1.4, sharey=False)
    grid.map_dataframe(sns.lineplot, x="layer_index", y="density", hue="method", hue_order=order, marker="o",
                       errorbar=None)  # fmt: skip
    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    grid.set_axis_labels("sparse tensor (model order)", "final density")
    grid.set_titles("{col_name}")
    grid.add_legend(title="method")
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid


def write_report(records_csv: str | Path, densities_csv: str | Path, *, table_csv: str | Path, table_md: str | Path,
                 figure_pdf: str | Path, figure_png: str | Path, density_pdf: str | Path, density_png: str | Path,
                 title: str = "") -> None:  # fmt: skip
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
    grid = layer_density_figure(densities, title)
    save_figure(grid.figure, density_pdf, density_png)
    plt.close(grid.figure)
