"""Tables and figures of the gradient-flow pruning study (Lubana & Dick, ICLR 2021).

Inputs are the pipeline's files: ``records.csv`` (one row per finished run: the final accuracy,
parameters and FLOPs of every model x dataset x measure x target x seed, plus ``measure ==
"dense"`` rows for the dense baselines) and the per-round ``rounds.csv`` of every pruning phase.
Only pandas, numpy, seaborn and matplotlib are imported here (no torch).

* **Final table**: mean ± std over seeds of test top-1 (%), alive parameters, alive FLOPs (M),
  the compression by parameters (dense / alive), the theoretical speed-up (dense / alive FLOPs) and
  the measured inference speed-up of the narrowed network over the dense architecture at batch
  sizes 64 and 1 (paired timings in the final job, on its device: :mod:`.final`), per dataset,
  model, target (the share of filters pruned, in % in the Markdown; a fraction in the CSV, as in
  ``records.csv``) and measure. Dense rows are the reference (1×) and have no measured columns.
* **Accuracy per round**: test top-1 (%) after each round's training (before pruning), one line per
  measure, a panel per dataset x model; dashed lines show the accuracy right after pruning, a dotted
  grey line the dense baseline's final accuracy.
* **Kendall tau per round**: each measure's ranking of all filters against the magnitude ranking,
  the paper's argument that magnitude-agnostic measures drift towards magnitude during training.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ...io.atomic import atomic_write_text
from ...report.figures import DENSE_STYLE, add_to_legend, save_figure  # also selects the headless Agg backend
from .keys import KEYS

__all__ = ["KEYS", "final_table", "final_table_markdown", "load_rounds", "rounds_figure", "write_report"]

_GROUP = ["dataset", "model", "target", "measure"]


def load_rounds(paths: Mapping[tuple[Any, ...], str | Path]) -> pd.DataFrame:
    """Every run's rounds.csv, with its keys (``KEYS``) as columns."""
    frames = []
    for key, path in paths.items():
        df = pd.read_csv(path)
        for name, value in zip(KEYS, key):
            df[name] = value
        frames.append(df)
    if not frames:
        raise ValueError("no pruning runs to plot")
    return pd.concat(frames, ignore_index=True)


def final_table(records: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per dataset, model, target and measure (dense rows first)."""
    needed = {"test_top1", "params_alive", "flops_alive", "compression", "theoretical_speedup", *LATENCY, *KEYS}
    missing = needed - set(records.columns)
    if missing:
        raise ValueError(f"records lack columns {sorted(missing)}")
    df = records.assign(test_top1=100 * records["test_top1"], mflops_alive=records["flops_alive"] / 1e6)
    agg = (
        df.groupby(_GROUP, sort=False)
        .agg(
            seeds=("seed", "nunique"),
            test_top1_mean=("test_top1", "mean"),
            test_top1_std=("test_top1", "std"),
            params_alive_mean=("params_alive", "mean"),
            params_alive_std=("params_alive", "std"),
            mflops_alive_mean=("mflops_alive", "mean"),
            mflops_alive_std=("mflops_alive", "std"),
            compression_mean=("compression", "mean"),
            compression_std=("compression", "std"),
            theoretical_speedup_mean=("theoretical_speedup", "mean"),
            theoretical_speedup_std=("theoretical_speedup", "std"),
            **{f"{c}_{stat}": (c, stat) for c in LATENCY for stat in ("mean", "std")},
        )
        .reset_index()
    )
    agg["_dense"] = agg["measure"] != "dense"
    agg = agg.sort_values(["dataset", "model", "_dense", "target", "measure"], kind="stable").drop(columns="_dense")
    # a std over one seed is 0; dense rows (no latency measured: they are the reference) stay empty
    stds = [c for c in agg.columns if c.endswith("_std") and not c.startswith("latency_")]
    return agg.fillna({c: 0.0 for c in stds}).reset_index(drop=True)


def _pm(mean: float, std: float, digits: int) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.{digits}f} ± {0.0 if pd.isna(std) else std:.{digits}f}"


# Measured per run by the final job (sparselab.studies.gradflow.final.measured_speedup).
LATENCY = ("latency_b64_pruned_ms", "latency_b64_dense_ms", "latency_b64_speedup", "latency_b1_speedup")
TARGET_HEADER = "target: filters pruned (%)"
COMPRESSION_HEADER = "compression (×): dense / alive params"
TABLE_NOTE = (
    "*target*: the share of the network's prunable filters removed by the last round (so the filter count "
    "shrinks to 100 − target %). *compression*: the dense model's parameters over the alive ones; it "
    "exceeds 1 / (1 − target) when a removed filter also takes the next layer's input channels with it. "
    "*theoretical speed-up*: dense FLOPs over alive FLOPs (one forward pass; ShrinkBench's definition). "
    "*measured speed-up*: inference time of the dense architecture over that of the physically narrowed "
    "network, both timed in the run's final job on its device (ratio of median times over interleaved repeats, eval mode; "
    "masked residual filters still cost their full width there), at batch size 64 and 1; *latency*: the "
    "narrowed network's milliseconds per batch of 64. Dense rows are the reference (1×)."
)


def final_table_markdown(table: pd.DataFrame) -> str:
    """The table for people: target in % of filters next to compression by parameters, and a note
    saying how the two differ."""
    rows = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "model": table["model"],
            TARGET_HEADER: [
                "—" if m == "dense" else f"{round(100 * t, 6):g}" for m, t in zip(table["measure"], table["target"])
            ],
            "measure": table["measure"],
            "seeds": table["seeds"],
            "test top-1 (%)": [_pm(m, s, 2) for m, s in zip(table["test_top1_mean"], table["test_top1_std"])],
            "alive params": [
                f"{m:,.0f} ± {s:,.0f}" for m, s in zip(table["params_alive_mean"], table["params_alive_std"])
            ],
            "alive MFLOPs": [_pm(m, s, 3) for m, s in zip(table["mflops_alive_mean"], table["mflops_alive_std"])],
            COMPRESSION_HEADER: [_pm(m, s, 2) for m, s in zip(table["compression_mean"], table["compression_std"])],
            "theoretical speed-up (×)": [
                _pm(m, s, 2) for m, s in zip(table["theoretical_speedup_mean"], table["theoretical_speedup_std"])
            ],
            "latency b64 (ms)": [
                _pm(m, s, 2) for m, s in zip(table["latency_b64_pruned_ms_mean"], table["latency_b64_pruned_ms_std"])
            ],
            "measured speed-up b64 (×)": [
                _pm(m, s, 2) for m, s in zip(table["latency_b64_speedup_mean"], table["latency_b64_speedup_std"])
            ],
            "measured speed-up b1 (×)": [
                _pm(m, s, 2) for m, s in zip(table["latency_b1_speedup_mean"], table["latency_b1_speedup_std"])
            ],
        }
    )
    md = rows.to_markdown(
        index=False, disable_numparse=True, colalign=["left"] * 2 + ["right"] + ["left"] + ["right"] * 9
    )
    return md + "\n\n" + TABLE_NOTE + "\n"


def rounds_figure(
    rounds: pd.DataFrame,
    value: str,
    ylabel: str,
    title: str = "",
    after: str | None = None,
    dense: pd.DataFrame | None = None,
) -> sns.FacetGrid:
    """``value`` per round (mean over seeds, band = std), a line per measure, a panel per
    dataset x model x target; ``after`` adds the same measure right after pruning, dashed;
    ``dense`` (dataset, model, value) draws each panel's dense baseline, dotted grey. The legend
    names the line styles and the baseline too."""
    df = rounds.copy()
    df["panel"] = (
        df["dataset"] + " · " + df["model"] + " · " + df["target"].map(lambda t: f"{float(t):.0%} of filters pruned")
    )
    measures = list(dict.fromkeys(df["measure"]))
    palette = dict(zip(measures, sns.color_palette("tab10" if len(measures) <= 10 else "tab20", len(measures))))
    grid = sns.FacetGrid(df, col="panel", col_wrap=min(3, df["panel"].nunique()), height=3.2, aspect=1.25, sharey=False)
    grid.map_dataframe(
        sns.lineplot,
        x="round",
        y=value,
        hue="measure",
        hue_order=measures,
        palette=palette,
        errorbar="sd",
        marker="o",
        markersize=3,
    )
    if after is not None:
        grid.map_dataframe(
            sns.lineplot,
            x="round",
            y=after,
            hue="measure",
            hue_order=measures,
            palette=palette,
            errorbar=None,
            linestyle="--",
            linewidth=0.8,
            legend=False,
        )
        add_to_legend(grid, "after the round's training", Line2D([], [], color="0.2", lw=1.5, marker="o", ms=3))
        add_to_legend(grid, "right after pruning", Line2D([], [], color="0.2", lw=0.8, ls="--"))
    for panel, ax in grid.axes_dict.items():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if dense is None:
            continue
        here = df[df["panel"] == panel].iloc[0]
        base = dense[(dense["dataset"] == here["dataset"]) & (dense["model"] == here["model"])]["value"]
        if len(base):
            add_to_legend(grid, "dense (final)", ax.axhline(base.mean(), **DENSE_STYLE))
    grid.set_axis_labels("pruning round", ylabel)
    grid.set_titles("{col_name}")
    grid.add_legend(title="measure")
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid


def write_report(
    records_csv: str | Path,
    rounds_paths: Mapping[tuple[Any, ...], str | Path],
    *,
    table_csv: str | Path,
    table_md: str | Path,
    rounds_pdf: str | Path,
    rounds_png: str | Path,
    kendall_pdf: str | Path,
    kendall_png: str | Path,
    title: str = "",
) -> None:
    """The study's table and its two figures."""
    records = pd.read_csv(records_csv)
    table = final_table(records)
    atomic_write_text(table_csv, table.to_csv(index=False))
    atomic_write_text(table_md, (f"# {title}\n\n" if title else "") + final_table_markdown(table))
    rounds = load_rounds(rounds_paths)
    percent = rounds.assign(
        test_top1_before=100 * rounds["test_top1_before"], test_top1_after=100 * rounds["test_top1_after"]
    )
    dense = records[records["measure"] == "dense"]
    grid = rounds_figure(
        percent,
        "test_top1_before",
        "test top-1 (%)",
        title,
        after="test_top1_after",
        dense=dense.assign(value=100 * dense["test_top1"]),
    )
    save_figure(grid.figure, rounds_pdf, rounds_png)
    plt.close(grid.figure)
    tau = rounds.dropna(subset=["kendall_tau_magnitude"])
    grid = rounds_figure(
        tau if len(tau) else rounds, "kendall_tau_magnitude", "Kendall τ to the magnitude ranking", title
    )
    for ax in grid.axes.flat:
        ax.axhline(0.0, color="0.6", linewidth=0.6)
        ax.set_ylim(-1.05, 1.05)
    save_figure(grid.figure, kendall_pdf, kendall_png)
    plt.close(grid.figure)
