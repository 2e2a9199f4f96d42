"""Tables and figure of the sparse-transfer study (Iofinova et al., CVPR 2022).

Input: ``records.csv`` (:func:`write_records`), one row per finished downstream run: the upstream
(``dense``, ``gmp``, ``acdc``, ``rigl_erk`` / ``rigl_uniform``, a checkpoint's name, or ``scratch``
for the from-scratch baseline)
at its nominal and measured sparsity, the transfer ``mode`` (``linear`` | ``full`` | ``scratch``),
the downstream dataset, the seed and the test top-1 and mean-per-class accuracies (fractions).
Only pandas, seaborn and matplotlib are imported here (no torch).

Conventions, as the paper's tables: accuracies in percent, std is the *population* std over seeds
(ddof=0; 0 for one seed). The dataset average (``dataset == "mean"``, the paper's headline number)
is the mean of the per-dataset means; its std is the population std over seeds of the per-seed
dataset average, counting only the seeds present for every dataset of the row (NaN if none).

* **Table** (long CSV + Markdown pivots): per upstream x mode x downstream dataset, plus the mean.
* **Headline**: the dataset average per upstream, linear next to full, and whether it beats
  training from scratch on the same datasets.
* **Upstreams** (from ``upstreams.csv``, :mod:`.upstreams`): per upstream its measured sparsity,
  parameters (all and alive), dense and sparse FLOPs and ShrinkBench's theoretical speed-up.
* **Figure**: top-1 against sparsity, a row per model x mode and a column per downstream dataset
  (plus the mean); dense and scratch are horizontal lines. Several models share one figure
  (more rows), so the report has one file per artefact.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ...io.atomic import atomic_write_text
from ...report.figures import save_figure  # also selects the headless Agg backend
from .records import COLUMNS, MEAN, MODES, SCRATCH, check_records, read_records, write_records

__all__ = [
    "COLUMNS",
    "OUTPUTS",
    "headline_markdown",
    "headline_table",
    "read_records",
    "transfer_figure",
    "transfer_table",
    "transfer_table_markdown",
    "upstream_label",
    "upstream_table",
    "upstream_table_markdown",
    "write_records",
    "write_report",
]

GROUP = ["upstream_dataset", "model", "mode", "upstream", "sparsity"]  # one row of the pivots
EXPERIMENT = ["upstream_dataset", "model"]
SCRATCH_LABEL = "scratch (no upstream)"
OUTPUTS = (
    "table",
    "table_md",
    "headline",
    "headline_md",
    "upstream_table",
    "upstream_table_md",
    "figure_pdf",
    "figure_png",
)
UPSTREAM_TABLE_COLUMNS = [
    *EXPERIMENT,
    "upstream",
    "sparsity",
    "label",
    "measured_sparsity",
    "params",
    "params_alive",
    "flops",
    "flops_sparse",
    "theoretical_speedup",
]
TABLE_COLUMNS = [
    *GROUP,
    "dataset",
    "n_datasets",
    "n_seeds",
    "top1_mean",
    "top1_std",
    "mpc_mean",
    "mpc_std",
    "measured_sparsity",
]
_MODE_TITLE = {"linear": "linear finetuning", "full": "full finetuning", SCRATCH: "from scratch only"}


# ---------------------------------------------------------------------------------------------- order and labels


def upstream_rank(upstream: str, sparsity: float) -> tuple[int, str, float]:
    """Row order: dense, gmp, acdc and rigl (erk, uniform) by sparsity, other upstreams by name then
    sparsity, scratch."""
    fixed = {"dense": 0, "gmp": 1, "acdc": 2, "rigl_erk": 3, "rigl_uniform": 4, SCRATCH: 6}
    if upstream in fixed:
        return fixed[upstream], "", float(sparsity)
    return 5, upstream, float(sparsity)


def _percent(sparsity: float) -> str:
    return f"{round(100 * float(sparsity), 6):g}%"


def upstream_label(upstream: str, sparsity: float) -> str:
    """``dense``, ``gmp 80%``, ``dsr 90%``, ``scratch (no upstream)``; a checkpoint at sparsity 0 is its name."""
    if upstream == "dense":
        return "dense"
    if upstream == SCRATCH:
        return SCRATCH_LABEL
    return upstream if float(sparsity) == 0 else f"{upstream} {_percent(sparsity)}"


def _datasets(names: Any) -> list[str]:
    return sorted({str(d) for d in names} - {MEAN}, key=lambda d: (d.lower(), d))


def _sort_table(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    mode = {m: i for i, m in enumerate((*MODES, SCRATCH))}
    datasets = {d: i for i, d in enumerate([*_datasets(table["dataset"]), MEAN])}
    key = table.assign(
        _mode=table["mode"].map(mode),
        _up=[upstream_rank(u, s)[:2] for u, s in zip(table["upstream"], table["sparsity"])],
        _ds=table["dataset"].map(datasets),
    )
    key["_rank"], key["_name"] = key["_up"].str[0], key["_up"].str[1]
    key = key.sort_values(["upstream_dataset", "model", "_mode", "_rank", "_name", "sparsity", "_ds"], kind="stable")
    return table.loc[key.index].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- table


def _seed_std(runs: pd.DataFrame, metric: str) -> tuple[float, int]:
    """Population std over seeds of the per-seed dataset average, over the seeds every dataset has."""
    wide = runs.pivot(index="seed", columns="dataset", values=metric).dropna()
    if wide.empty:
        return float("nan"), 0
    return float(wide.mean(axis=1).std(ddof=0)), len(wide)


def transfer_table(records: pd.DataFrame) -> pd.DataFrame:
    """Long table: per upstream dataset, model, mode, upstream, sparsity and downstream dataset the
    number of seeds and mean / population std of top-1 and mean-per-class accuracy (%), plus one
    ``dataset == "mean"`` row per group: mean of the per-dataset means, std over complete seeds."""
    check_records(records)
    if records.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    df = records.assign(
        top1=100 * records["top1"].astype(float),
        mean_per_class=100 * pd.to_numeric(records["mean_per_class"], errors="coerce"),
        measured_sparsity=pd.to_numeric(records["measured_sparsity"], errors="coerce"),
    )
    g = df.groupby([*GROUP, "dataset"], sort=False)
    per = pd.concat(
        {
            "n_seeds": g["seed"].nunique(),
            "top1_mean": g["top1"].mean(),
            "top1_std": g["top1"].std(ddof=0),
            "mpc_mean": g["mean_per_class"].mean(),
            "mpc_std": g["mean_per_class"].std(ddof=0),
            "measured_sparsity": g["measured_sparsity"].mean(),
        },
        axis=1,
    ).reset_index()
    per["n_datasets"] = 1
    means = []
    for key, runs in df.groupby(GROUP, sort=False):
        rows = per[(per[GROUP] == pd.Series(key, index=GROUP)).all(axis=1)]
        top1_std, n_seeds = _seed_std(runs, "top1")
        mpc_std, _ = _seed_std(runs, "mean_per_class")
        means.append(
            {
                **dict(zip(GROUP, key)),
                "dataset": MEAN,
                "n_datasets": len(rows),
                "n_seeds": n_seeds,
                "top1_mean": rows["top1_mean"].mean(skipna=False),
                "top1_std": top1_std,
                "mpc_mean": rows["mpc_mean"].mean(skipna=False),
                "mpc_std": mpc_std,
                "measured_sparsity": rows["measured_sparsity"].mean(),
            }
        )
    table = pd.concat([per, pd.DataFrame(means)], ignore_index=True)[TABLE_COLUMNS]
    return _sort_table(table)


def _cell(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def _seeds(counts: pd.Series) -> str:
    counts = counts.dropna().astype(int)
    if counts.empty:
        return "—"
    lo, hi = counts.min(), counts.max()
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def _experiments(table: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(table["upstream_dataset"], table["model"])))


def _pivot(rows: pd.DataFrame, datasets: list[str]) -> tuple[pd.DataFrame, bool]:
    """One Markdown-ready row per upstream (in ``rows``' order); True if a mean misses datasets."""
    out, partial = [], False
    for (upstream, sparsity), sub in rows.groupby(["upstream", "sparsity"], sort=False):
        cells = {d: "—" for d in datasets}
        for r in sub.itertuples():
            if r.dataset != MEAN:
                cells[r.dataset] = _cell(r.top1_mean, r.top1_std)
        mean = sub[sub["dataset"] == MEAN].iloc[0]
        star = "*" if mean["n_datasets"] < len(datasets) else ""
        partial |= bool(star)
        out.append(
            {
                "upstream": upstream_label(upstream, sparsity),
                "seeds": _seeds(sub.loc[sub["dataset"] != MEAN, "n_seeds"]),
                **cells,
                MEAN: _cell(mean["top1_mean"], mean["top1_std"]) + star,
            }
        )
    return pd.DataFrame(out, columns=["upstream", "seeds", *datasets, MEAN]), partial


def transfer_table_markdown(table: pd.DataFrame, title: str = "") -> str:
    """A section per model (and upstream dataset) and per mode: rows = upstreams, columns = datasets
    and their mean, cells = test top-1 (%) mean ± std over seeds; scratch is the last row of both."""
    parts = [f"# {title}\n"] if title else []
    if table.empty:
        return "\n".join([*parts, "No transfer runs.\n"])
    for up_data, model in _experiments(table):
        exp = table[(table["upstream_dataset"] == up_data) & (table["model"] == model)]
        scratch = exp[exp["mode"] == SCRATCH]
        modes = [m for m in MODES if (exp["mode"] == m).any()] or [SCRATCH]
        parts.append(f"## {model} (upstream: {up_data})\n")
        for mode in modes:
            rows = exp[exp["mode"] == mode] if mode != SCRATCH else exp.iloc[:0]
            datasets = _datasets(pd.concat([rows["dataset"], scratch["dataset"]]))
            view, partial = _pivot(pd.concat([rows, scratch]), datasets)
            parts.append(f"### {_MODE_TITLE[mode]}: test top-1 (%), mean ± std over seeds\n")
            md = view.to_markdown(
                index=False, disable_numparse=True, colalign=["left", "right"] + ["right"] * (len(datasets) + 1)
            )
            parts.append(md + "\n")
            if partial:
                parts.append("\\* mean over fewer datasets than the columns (missing cells).\n")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- headline


def headline_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per upstream: the dataset average (and its seed std) of linear and full transfer, and whether
    it beats the from-scratch baseline averaged over the same datasets (NaN without one). The
    scratch row (last) carries the baseline in both columns."""
    cols = [*EXPERIMENT, "upstream", "sparsity", "label"]
    for mode in MODES:
        cols += [f"{mode}_mean", f"{mode}_std", f"{mode}_n_seeds"]
    cols += [f"beats_scratch_{m}" for m in MODES]
    out = []
    for up_data, model in _experiments(table):
        exp = table[(table["upstream_dataset"] == up_data) & (table["model"] == model)]
        per = exp[exp["dataset"] != MEAN]
        scratch = per[per["mode"] == SCRATCH].set_index("dataset")["top1_mean"]
        means = exp[exp["dataset"] == MEAN].set_index(["mode", "upstream", "sparsity"])
        ups = exp.loc[exp["mode"] != SCRATCH, ["upstream", "sparsity"]].drop_duplicates()
        ups = sorted(ups.itertuples(index=False), key=lambda u: upstream_rank(u.upstream, u.sparsity))
        for u in ups:
            row: dict[str, Any] = {
                "upstream_dataset": up_data,
                "model": model,
                "upstream": u.upstream,
                "sparsity": u.sparsity,
                "label": upstream_label(u.upstream, u.sparsity),
            }
            for mode in MODES:
                key = (mode, u.upstream, u.sparsity)
                if key not in means.index:
                    row.update(
                        {
                            f"{mode}_mean": np.nan,
                            f"{mode}_std": np.nan,
                            f"{mode}_n_seeds": 0,
                            f"beats_scratch_{mode}": np.nan,
                        }
                    )
                    continue
                m = means.loc[key]
                row.update(
                    {f"{mode}_mean": m["top1_mean"], f"{mode}_std": m["top1_std"], f"{mode}_n_seeds": m["n_seeds"]}
                )
                mine = per[(per["mode"] == mode) & (per["upstream"] == u.upstream) & (per["sparsity"] == u.sparsity)]
                mine = mine.set_index("dataset")["top1_mean"]
                common = mine.index.intersection(scratch.index)
                beats = np.nan if common.empty else bool(mine[common].mean() > scratch[common].mean())
                row[f"beats_scratch_{mode}"] = beats
            out.append(row)
        baseline = exp[(exp["mode"] == SCRATCH) & (exp["dataset"] == MEAN)]
        if len(baseline):
            s = baseline.iloc[0]
            row = {
                "upstream_dataset": up_data,
                "model": model,
                "upstream": SCRATCH,
                "sparsity": 0.0,
                "label": SCRATCH_LABEL,
            }
            for mode in MODES:
                row.update(
                    {
                        f"{mode}_mean": s["top1_mean"],
                        f"{mode}_std": s["top1_std"],
                        f"{mode}_n_seeds": s["n_seeds"],
                        f"beats_scratch_{mode}": np.nan,
                    }
                )
            out.append(row)
    frame = pd.DataFrame(out, columns=cols)
    for mode in MODES:
        frame[f"beats_scratch_{mode}"] = frame[f"beats_scratch_{mode}"].astype(object)
    return frame


def _yes(value: Any) -> str:
    return "—" if pd.isna(value) else ("yes" if value else "no")


def headline_markdown(headline: pd.DataFrame, title: str = "") -> str:
    """Per model: upstream x {linear, full} dataset-average top-1 (%), and ``> scratch`` flags."""
    parts = [f"# {title}\n"] if title else []
    if headline.empty:
        return "\n".join([*parts, "No transfer runs.\n"])
    for up_data, model in _experiments(headline):
        exp = headline[(headline["upstream_dataset"] == up_data) & (headline["model"] == model)]
        transfer = exp[exp["upstream"] != SCRATCH]
        modes = [m for m in MODES if transfer[f"{m}_mean"].notna().any()] or list(MODES)
        has_scratch = (exp["upstream"] == SCRATCH).any()
        view = {"upstream": exp["label"]}
        for mode in modes:
            view[f"{mode} (%)"] = [_cell(m, s) for m, s in zip(exp[f"{mode}_mean"], exp[f"{mode}_std"])]
        if has_scratch:
            for mode in modes:
                view[f"{mode} > scratch"] = exp[f"beats_scratch_{mode}"].map(_yes)
        frame = pd.DataFrame(view)
        parts.append(f"## {model} (upstream: {up_data}): mean test top-1 over downstream datasets\n")
        parts.append(
            frame.to_markdown(index=False, disable_numparse=True, colalign=["left"] + ["right"] * (frame.shape[1] - 1))
            + "\n"
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- upstreams


def upstream_table(upstreams: pd.DataFrame) -> pd.DataFrame:
    """One row per upstream (``upstreams.csv``) in the tables' order, with its label: measured
    sparsity, parameters (all, alive), dense and sparse FLOPs and the theoretical speed-up."""
    if upstreams.empty:
        return pd.DataFrame(columns=UPSTREAM_TABLE_COLUMNS)
    frame = upstreams.assign(label=[upstream_label(u, s) for u, s in zip(upstreams["upstream"], upstreams["sparsity"])])
    key = [
        (d, m, *upstream_rank(u, s)) for d, m, u, s in zip(*(frame[c] for c in [*EXPERIMENT, "upstream", "sparsity"]))
    ]
    order = sorted(range(len(frame)), key=lambda i: key[i])
    return frame.iloc[order][UPSTREAM_TABLE_COLUMNS].reset_index(drop=True)


def _count(n: float) -> str:
    """A count with an SI prefix and 3 significant digits: 25.6M, 4.11G, 812."""
    for value, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= value:
            return f"{n / value:.3g}{prefix}"
    return f"{n:.3g}"


def upstream_table_markdown(table: pd.DataFrame, title: str = "") -> str:
    """Per model: each upstream's measured sparsity, parameters, FLOPs and theoretical speed-up."""
    parts = [f"# {title}\n"] if title else []
    if table.empty:
        return "\n".join([*parts, "No upstreams.\n"])
    for up_data, model in _experiments(table):
        exp = table[(table["upstream_dataset"] == up_data) & (table["model"] == model)]
        view = pd.DataFrame(
            {
                "upstream": exp["label"],
                "sparsity (%)": [f"{100 * float(s):.1f}" for s in exp["measured_sparsity"]],
                "params": exp["params"].map(_count),
                "alive": exp["params_alive"].map(_count),
                "FLOPs": exp["flops"].map(_count),
                "sparse FLOPs": exp["flops_sparse"].map(_count),
                "speed-up": [f"{float(x):.2f}×" for x in exp["theoretical_speedup"]],
            }
        )
        parts.append(f"## {model} (upstream: {up_data}): size and theoretical cost of each upstream\n")
        parts.append(
            view.to_markdown(index=False, disable_numparse=True, colalign=["left"] + ["right"] * (view.shape[1] - 1))
            + "\n"
        )
    parts.append(
        "Measured sparsity: zeros among the conv and Linear weights before the classifier. Parameters and FLOPs: "
        "the upstream network with its own classifier, one forward pass at batch 1 (a multiply-add counts 2); "
        "alive and sparse FLOPs leave out what its mask holds at zero; speed-up: FLOPs over sparse FLOPs "
        "(ShrinkBench's theoretical speed-up, which no dense kernel realises).\n"
    )
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- figure


def _methods(table: pd.DataFrame) -> list[str]:
    names = set(table["upstream"]) - {"dense", SCRATCH}
    return sorted(names, key=lambda n: upstream_rank(n, 0.0)[:2])


def transfer_figure(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Top-1 (%) against sparsity (%): a row per (upstream dataset,) model x mode, a column per
    downstream dataset and the mean; a line per sparse upstream with error bars (std over seeds),
    dense a solid black and scratch a dashed grey horizontal line; one legend for all panels. In the
    mean column a hollow marker is a mean over fewer datasets than the row has."""
    if table.empty:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.text(0.5, 0.5, "no transfer runs", ha="center", va="center")
        ax.set_axis_off()
        if title:
            fig.suptitle(title)
        return fig
    experiments = _experiments(table)
    rows = []
    for up_data, model in experiments:
        exp = table[(table["upstream_dataset"] == up_data) & (table["model"] == model)]
        modes = [m for m in MODES if (exp["mode"] == m).any()] or [SCRATCH]
        rows += [(up_data, model, mode) for mode in modes]
    columns = [*_datasets(table["dataset"]), MEAN]
    methods = _methods(table)
    palette = dict(zip(methods, sns.color_palette("tab10" if len(methods) <= 10 else "tab20", max(len(methods), 1))))
    markers = dict(zip(methods, ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"] * (len(methods) // 10 + 1)))
    sparse = 100 * table.loc[table["upstream"].isin(methods), "sparsity"].astype(float)
    lo, hi = (sparse.min(), sparse.max()) if len(sparse) else (0.0, 100.0)
    pad = max(5.0, 0.05 * (hi - lo))
    several = len({u for u, _ in experiments}) > 1

    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(3.0 * len(columns), 2.6 * len(rows)), squeeze=False, sharex=True
    )
    handles: dict[str, Any] = {}
    for i, (up_data, model, mode) in enumerate(rows):
        exp = table[(table["upstream_dataset"] == up_data) & (table["model"] == model)]
        n_datasets = {m: exp.loc[(exp["mode"] == m) & (exp["dataset"] != MEAN), "dataset"].nunique() for m in MODES}
        for j, dataset in enumerate(columns):
            ax = axes[i, j]
            panel = exp[exp["dataset"] == dataset]
            here = panel[panel["mode"] == mode] if mode != SCRATCH else panel.iloc[:0]
            dense = here[here["upstream"] == "dense"]
            if len(dense):
                d = dense.iloc[0]
                handles["dense"] = ax.axhline(d["top1_mean"], color="black", lw=1.3, ls="-", label="dense")
                if pd.notna(d["top1_std"]) and d["top1_std"] > 0:
                    ax.axhspan(
                        d["top1_mean"] - d["top1_std"], d["top1_mean"] + d["top1_std"], color="black", alpha=0.08, lw=0
                    )
            for method in methods:
                pts = here[here["upstream"] == method].sort_values("sparsity")
                if pts.empty:
                    continue
                bars = ax.errorbar(
                    100 * pts["sparsity"].astype(float),
                    pts["top1_mean"],
                    yerr=pts["top1_std"].fillna(0.0),
                    color=palette[method],
                    marker=markers[method],
                    ms=5,
                    lw=1.4,
                    capsize=2.5,
                    label=method,
                )
                handles.setdefault(method, bars)
                if dataset == MEAN:  # a mean over fewer datasets than the row's: hollow marker
                    partial = pts[pts["n_datasets"] < n_datasets[mode]]
                    ax.plot(
                        100 * partial["sparsity"].astype(float),
                        partial["top1_mean"],
                        ls="none",
                        marker=markers[method],
                        ms=5,
                        mfc="white",
                        mec=palette[method],
                        zorder=3,
                    )
            scratch = panel[panel["mode"] == SCRATCH]
            if len(scratch):
                handles[SCRATCH] = ax.axhline(scratch.iloc[0]["top1_mean"], color="0.5", lw=1.3, ls="--", label=SCRATCH)
            if panel.empty or (here.empty and scratch.empty):
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, color="0.4")
            ax.set_xlim(max(0.0, lo - pad), min(100.0, hi + pad))
            ax.grid(True, lw=0.4, alpha=0.5)
            if i == 0:
                ax.set_title(dataset if dataset != MEAN else "mean over datasets")
            if j == 0:
                row = f"{model} · {mode}" if not several else f"{up_data} · {model} · {mode}"
                ax.set_ylabel(f"{row}\ntop-1 (%)")
            if i == len(rows) - 1:
                ax.set_xlabel("sparsity (%)")
    order = [k for k in ["dense", *methods, SCRATCH] if k in handles]
    fig.legend(
        [handles[k] for k in order],
        order,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        title="upstream",
        frameon=False,
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- report


def write_report(
    records_csv: str | Path,
    out: Mapping[str, str | Path],
    title: str = "",
    upstreams_csv: str | Path | None = None,
) -> dict[str, pd.DataFrame]:
    """Write the artefacts named in ``out`` (any of ``OUTPUTS``): ``table`` / ``table_md``,
    ``headline`` / ``headline_md``, ``upstream_table`` / ``upstream_table_md`` (from
    ``upstreams_csv``) and ``figure_pdf`` + ``figure_png`` (both or neither)."""
    unknown = set(out) - set(OUTPUTS)
    if unknown:
        raise ValueError(f"write_report: unknown outputs {sorted(unknown)} (known: {', '.join(OUTPUTS)})")
    if ("figure_pdf" in out) != ("figure_png" in out):
        raise ValueError("write_report: give figure_pdf and figure_png together")
    if {"upstream_table", "upstream_table_md"} & set(out) and upstreams_csv is None:
        raise ValueError("write_report: the upstream table needs upstreams_csv (the transfer_upstreams rule's output)")
    table = transfer_table(read_records(records_csv))
    headline = headline_table(table)
    frames = {"table": table, "headline": headline}
    if upstreams_csv is not None:
        ups = upstream_table(pd.read_csv(upstreams_csv, dtype={"upstream_dataset": str, "model": str, "upstream": str}))
        frames["upstreams"] = ups
        if "upstream_table" in out:
            atomic_write_text(out["upstream_table"], ups.to_csv(index=False))
        if "upstream_table_md" in out:
            atomic_write_text(out["upstream_table_md"], upstream_table_markdown(ups, title))
    if "table" in out:
        atomic_write_text(out["table"], table.to_csv(index=False))
    if "table_md" in out:
        atomic_write_text(out["table_md"], transfer_table_markdown(table, title))
    if "headline" in out:
        atomic_write_text(out["headline"], headline.to_csv(index=False))
    if "headline_md" in out:
        atomic_write_text(out["headline_md"], headline_markdown(headline, title))
    if "figure_pdf" in out:
        fig = transfer_figure(table, title)
        save_figure(fig, out["figure_pdf"], out["figure_png"])
        plt.close(fig)
    return frames
