"""Tables and figures of the path-norm study (Gonon et al., ICLR 2024: Tables 2, 3, 5, Figures 3, 4, 5).

Inputs are the pipeline's files: per-epoch metrics CSVs of the training engine (one per run), the
pretrained-model summaries (dicts read from JSON by the caller), their margin arrays, and the rows
of the bound table. Only pandas, numpy, seaborn and matplotlib are imported here (no torch).

Conventions shared by every figure and table of this module:

* **Train accuracy and loss** of a generalisation gap (``gap``, see :data:`GAPS`): ``running``
  (the default, the original's and so the paper's) = ``train_top1``/``train_loss``, the engine's
  running average over the epoch's (augmented) batches in train mode; ``eval`` =
  ``margin_train_top1``/``margin_train_loss``, eval mode on a non-augmented subset of the training
  set at the same weights as the test metrics. Summaries record both.
* **Generalisation gaps**: top-1 gap = train top-1 - ``test_top1`` in percentage points;
  cross-entropy gap = ``test_loss`` - train loss (nats).
* **Path-norm conventions**: the figures draw every logged convention, the original code's
  (``gbrg24``, what the paper plots) first and the definition (``exact``) beside it.
* **Path-norms** are plotted from the always-finite ``log10_L{q:g}`` columns (``gbrg24_log10_L{q:g}``
  for the original code's convention), never from ``L{q:g}``, which may be ``inf``: a panel shows
  ``y = 10**log10`` on a log-scaled axis. Only if a panel holds a value whose ``10**log10`` leaves
  the comfortable float64 range (``|log10| > 300``) does it plot ``log10`` itself on a linear
  axis labelled "log10 L_q" instead; :func:`pathnorm_panel_is_log10` tells which one a panel used.
* **Markdown**: path-norms (which span tens of orders of magnitude) in scientific notation,
  formatted from ``log10`` so values beyond float range still print; everything else fixed-point.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ...io.atomic import atomic_write_text, atomic_write_with
from ...report.figures import log_axis, save_figure  # also selects the headless Agg backend

__all__ = [
    "BOUND_COLUMNS",
    "CONVENTIONS",
    "GAPS",
    "MARGIN_QUANTILES",
    "Panel",
    "add_gaps",
    "bound_markdown",
    "bound_table",
    "epoch_summary",
    "fraction_label",
    "frame_markdown",
    "imp_figure",
    "imp_frame",
    "load_runs",
    "log10_column",
    "logged_conventions",
    "margin_histograms",
    "margin_markdown",
    "margin_table",
    "pathnorm_panel_is_log10",
    "pretrained_markdown",
    "pretrained_table",
    "save_figure",
    "sci_from_log10",
    "subsets_figure",
    "subsets_frame",
    "summary_markdown",
    "value_column",
    "write_table",
]

MARGIN_QUANTILES: tuple[str, ...] = ("margin_q0", "margin_q1_3", "margin_q1_2", "margin_q2_3", "margin_q1")
"""The p-quantiles of the train margins for p = e, (2e+1)/3, (e+1)/2, (e+2)/3, 1 (e = train top-1 error)."""
_QUANTILE_HEADERS = {
    "margin_q0": "q(e)",
    "margin_q1_3": "q((2e+1)/3)",
    "margin_q1_2": "q((e+1)/2)",
    "margin_q2_3": "q((e+2)/3)",
    "margin_q1": "max",
}
CONVENTIONS = ("exact", "gbrg24")
PAPER_FIRST = ("gbrg24", "exact")  # the order of the figures' path-norm rows: the paper's numbers first
GAPS = ("running", "eval")
"""Train measures of a generalisation gap: ``running`` (train_top1/train_loss: the epoch's running
average in train mode over (augmented) batches, as the original) or ``eval`` (margin_train_*: eval
mode on the non-augmented analysis subset)."""
_TRAIN_COLUMNS = {"running": ("train_top1", "train_loss"), "eval": ("margin_train_top1", "margin_train_loss")}
_TRAIN_WORDS = {"running": "running epoch average", "eval": "eval mode, end of epoch"}
_LOG10_SAFE = 300.0  # beyond this |log10|, 10**log10 is (or is near) inf/0 in float64: plot log10 instead
_PANEL_FLAG = "_sparselab_log10_panel"


# ----------------------------------------------------------------------------------------------
# Column names and loading


def value_column(q: float, convention: str = "exact") -> str:
    """CSV column of the L^q path-norm value: ``L1``, ``L0.5``, ``gbrg24_L1`` ... (may hold inf)."""
    _check_convention(convention)
    return f"L{q:g}" if convention == "exact" else f"{convention}_L{q:g}"


def log10_column(q: float, convention: str = "exact") -> str:
    """CSV column of log10 of the L^q path-norm: ``log10_L1``, ``gbrg24_log10_L1`` ... (finite)."""
    _check_convention(convention)
    return f"log10_L{q:g}" if convention == "exact" else f"{convention}_log10_L{q:g}"


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown path-norm convention {convention!r}; expected one of {CONVENTIONS}")


def load_runs(paths: Mapping[Any, str | Path], key_names: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-run metrics CSVs, adding one column per key name in front.

    Args:
        paths: run key -> CSV path. A key is a scalar when ``key_names`` has one name (e.g. the IMP
            round ``r``), else a tuple with one value per name (e.g. ``(fraction, seed)``).
        key_names: names of the key columns, e.g. ``("round",)`` or ``("fraction", "seed")``. A CSV
            column of the same name is replaced by the key.

    Returns:
        All rows, sorted by the keys then ``epoch``; ``inf`` cells parse as float ``inf``, empty
        cells (e.g. ``val_*``) as NaN.
    """
    key_names = list(key_names)
    if not key_names:
        raise ValueError("key_names must name at least one key column")
    if not paths:
        raise ValueError("no metrics CSVs to load")
    frames = []
    for key, path in paths.items():
        values = tuple(key) if isinstance(key, tuple) else (key,)
        if len(values) != len(key_names):
            raise ValueError(f"key {key!r} does not match key_names {key_names}")
        frame = pd.read_csv(path)
        frame = frame.drop(columns=[k for k in key_names if k in frame.columns])
        for i, (name, value) in enumerate(zip(key_names, values)):
            frame.insert(i, name, value)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    order = key_names + (["epoch"] if "epoch" in out.columns else [])
    return out.sort_values(order, kind="stable").reset_index(drop=True)


def add_gaps(df: pd.DataFrame, gap: str = "running") -> pd.DataFrame:
    """A copy with the plotted quantities added, for both train measures (see :data:`GAPS`).

    ``test_top1_pct`` = 100 * ``test_top1``; per measure ``m`` in :data:`GAPS`:
    ``train_top1_{m}_pct``, ``top1_gap_{m}_pct`` (train - test, points) and ``ce_gap_{m}``
    (``test_loss`` - train loss); ``train_top1_pct``, ``top1_gap_pct`` and ``ce_gap`` are those of
    ``gap``. Missing source columns give NaN.
    """
    _check_gap(gap)
    out = df.copy()
    test, test_loss = _numeric(df, "test_top1"), _numeric(df, "test_loss")
    out["test_top1_pct"] = 100 * test
    for measure, (top1, loss) in _TRAIN_COLUMNS.items():
        train = _numeric(df, top1)
        out[f"train_top1_{measure}_pct"] = 100 * train
        out[f"top1_gap_{measure}_pct"] = 100 * (train - test)
        out[f"ce_gap_{measure}"] = test_loss - _numeric(df, loss)
    out["train_top1_pct"] = out[f"train_top1_{gap}_pct"]
    out["top1_gap_pct"] = out[f"top1_gap_{gap}_pct"]
    out["ce_gap"] = out[f"ce_gap_{gap}"]
    return out


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[column], errors="coerce")


def _check_gap(gap: str) -> None:
    if gap not in GAPS:
        raise ValueError(f"unknown generalisation gap {gap!r}; expected one of {GAPS}")


def epoch_summary(
    df: pd.DataFrame, key_names: Sequence[str], average_over: Sequence[str] = (), gap: str = "running"
) -> pd.DataFrame:
    """The last epoch of each run (the values a figure shows at its right end), gaps included.

    Args:
        df: rows from :func:`load_runs`.
        key_names: the run key columns, e.g. ``("round",)`` or ``("fraction", "seed")``.
        average_over: key columns to average out (e.g. ``("seed",)`` for the subsets figure, which
            plots means over seeds): numeric columns are then arithmetic means over those runs'
            last epochs, ``log10_L*`` columns are log10 of the arithmetic mean of the path-norms
            (computed in log space, so it is exact beyond float range; the value the figure
            plots), and ``n_runs`` counts the runs.
        gap: the train measure of ``top1_gap_pct``/``ce_gap`` (:data:`GAPS`); both are recorded.

    Returns:
        One row per run (or per remaining key), sorted by key, with :func:`add_gaps`' columns.
    """
    key_names = list(key_names)
    last = df.sort_values(key_names + ["epoch"], kind="stable").groupby(key_names, sort=True, dropna=False).tail(1)
    last = add_gaps(last, gap).reset_index(drop=True)
    average_over = list(average_over)
    if not average_over:
        return last
    keep = [k for k in key_names if k not in average_over]
    if not keep:
        raise ValueError("average_over must leave at least one key column")
    numeric = [c for c in last.columns if c not in key_names and pd.api.types.is_numeric_dtype(last[c])]
    grouped = last.groupby(keep, sort=True, dropna=False)
    logs = [c for c in numeric if _is_log10_column(c)]
    out = grouped[[c for c in numeric if c not in logs]].mean()
    for c in logs:
        out[c] = grouped[c].agg(_log10_mean)
    out = out[[c for c in numeric]]
    out.insert(0, "n_runs", grouped.size())
    return out.reset_index()


def _is_log10_column(name: str) -> bool:
    return name.startswith("log10_L") or any(name.startswith(f"{c}_log10_L") for c in CONVENTIONS)


def _log10_mean(logs: pd.Series) -> float:
    """log10 of the mean of 10**logs without leaving log space (NaNs ignored)."""
    x = logs.to_numpy(dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan")
    top = x.max()
    if not np.isfinite(top):
        return float(top)
    return float(top + np.log10(np.mean(np.power(10.0, x - top))))


# ----------------------------------------------------------------------------------------------
# Figures


def fraction_label(fraction: float) -> str:
    """ "1/8" when ``fraction`` is 1/2**k (k >= 1), "1" for 1, else the decimal (``:g``)."""
    f = float(fraction)
    if f > 0:
        k = round(-math.log2(f))
        if k >= 0 and math.isclose(f, 2.0**-k, rel_tol=1e-9):
            return "1" if k == 0 else f"1/{2**k}"
    return f"{f:g}"


def pathnorm_panel_is_log10(ax: plt.Axes) -> bool:
    """Whether a path-norm panel plotted ``log10`` on a linear axis (its values overflow float64)."""
    return bool(getattr(ax, _PANEL_FLAG, False))


def logged_conventions(df: pd.DataFrame, qs: Iterable[float]) -> tuple[str, ...]:
    """The path-norm conventions with a column for every q in ``df``, the paper's (gbrg24) first."""
    qs = list(qs)
    return tuple(
        c for c in PAPER_FIRST if all(log10_column(q, c) in df.columns or value_column(q, c) in df.columns for q in qs)
    )


@dataclasses.dataclass(frozen=True)
class Panel:
    """One panel of Figure 4 or 5; ``name`` keys its rows in the plotted frame.

    ``scale``: ``"log"`` (path-norm values on a log axis), ``"log10"`` (path-norm log10 on a
    linear axis, when the values leave float64) or ``"linear"``.
    """

    name: str
    ylabel: str
    scale: str = "linear"
    convention: str | None = None  # path-norm panels only
    zero_line: bool = False


def _pathnorm_values(df: pd.DataFrame, q: float, convention: str) -> pd.Series:
    """log10 of L^q per row: the log10 column, else log10 of the value column (non-finite -> NaN)."""
    col = log10_column(q, convention)
    if col in df.columns:
        out = pd.to_numeric(df[col], errors="coerce")
    else:
        vcol = value_column(q, convention)
        if vcol not in df.columns:
            raise KeyError(f"neither {col!r} nor {vcol!r} is a column of the metrics")
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log10(pd.to_numeric(df[vcol], errors="coerce").astype(float))
    return out.where(np.isfinite(out))


def _pathnorm_panel(df: pd.DataFrame, q: float, convention: str) -> tuple[Panel, pd.Series]:
    """The panel of L^q in one convention and its values: 10**log10 (log axis) or, when that
    would overflow, log10 itself."""
    logs = _pathnorm_values(df, q, convention)
    as_log10 = bool((logs.abs() > _LOG10_SAFE).any())
    name = f"L{q:g} path-norm ({convention}{', as the paper' if convention == 'gbrg24' else ''})"
    panel = Panel(
        value_column(q, convention), f"log10 {name}" if as_log10 else name, "log10" if as_log10 else "log", convention
    )
    return panel, logs if as_log10 else np.power(10.0, logs)


def _gap_panels(gap: str, names: Sequence[str]) -> list[Panel]:
    words = _TRAIN_WORDS[gap]
    panels = {
        "top1_gap_pct": Panel("top1_gap_pct", f"top-1 gap (train − test, %)\ntrain: {words}", zero_line=True),
        "ce_gap": Panel("ce_gap", f"cross-entropy gap (test − train)\ntrain: {words}", zero_line=True),
        "train_top1_pct": Panel("train_top1_pct", f"train top-1 (%)\n{words}"),
        "test_top1_pct": Panel("test_top1_pct", "test top-1 (%)"),
    }
    return [panels[n] for n in names]


def _plot_frame(
    df: pd.DataFrame,
    keys: Sequence[str],
    q_panels: Sequence[float],
    conventions: Sequence[str] | None,
    gap: str,
    gap_names: Sequence[str],
    pathnorms_first: bool,
) -> tuple[pd.DataFrame, list[Panel]]:
    """Long frame (keys, epoch, panel, value) of every panel's values, NaN dropped, in panel order."""
    data = add_gaps(df, gap)
    if conventions is None:
        conventions = logged_conventions(df, q_panels)
        if not conventions:
            raise KeyError(f"no path-norm columns for q = {list(q_panels)} in either convention {PAPER_FIRST}")
    for c in conventions:
        _check_convention(c)
    norms = [_pathnorm_panel(data, q, c) for c in conventions for q in q_panels]
    gaps = [(p, data[p.name]) for p in _gap_panels(gap, gap_names)]
    columns = norms + gaps if pathnorms_first else gaps + norms
    keys = [*keys, "epoch"]
    parts = [data[keys].assign(panel=p.name, value=v.to_numpy(dtype=float)) for p, v in columns]
    frame = pd.concat(parts, ignore_index=True).dropna(subset=["value"])
    return frame.reset_index(drop=True), [p for p, _ in columns]


def imp_frame(
    df: pd.DataFrame,
    qs_panels: Sequence[float] = (1, 2, 4),
    *,
    conventions: Sequence[str] | None = None,
    gap: str = "running",
    round_col: str = "round",
) -> tuple[pd.DataFrame, list[Panel]]:
    """What Figure 4 plots: a long frame (``round_col``, epoch, panel, value), rows sharing
    (round, epoch) averaged, and its panels in drawing order.

    Panels: the L^q path-norm for each q of ``qs_panels`` in each of ``conventions`` (default:
    those logged, the paper's gbrg24 first), then the top-1 generalisation gap, the train top-1 of
    ``gap`` (default ``running``, the paper's) and the test top-1 (%).
    """
    frame, panels = _plot_frame(
        df,
        [round_col],
        qs_panels,
        conventions,
        gap,
        ("top1_gap_pct", "train_top1_pct", "test_top1_pct"),
        pathnorms_first=True,
    )
    frame = frame.groupby([round_col, "epoch", "panel"], as_index=False, sort=False)["value"].mean()
    order = {p.name: i for i, p in enumerate(panels)}
    frame = frame.sort_values([round_col, "epoch"], kind="stable")
    frame = frame.sort_values("panel", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return frame, panels


def subsets_frame(
    df: pd.DataFrame,
    *,
    q: float = 1,
    conventions: Sequence[str] | None = None,
    gap: str = "running",
    fraction_col: str = "fraction",
    seed_col: str = "seed",
) -> tuple[pd.DataFrame, list[Panel]]:
    """What Figure 5 plots, before the mean over seeds: a long frame (``fraction_col``,
    ``seed_col``, epoch, panel, value) and its panels in drawing order: the top-1 and
    cross-entropy gaps with the train measure ``gap`` (default ``running``, the paper's), then the
    L^q path-norm in each of ``conventions`` (default: those logged, the paper's gbrg24 first)."""
    return _plot_frame(
        df, [fraction_col, seed_col], (q,), conventions, gap, ("top1_gap_pct", "ce_gap"), pathnorms_first=False
    )


def _panel_grid(fig: plt.Figure, rows: Sequence[Sequence[Panel]], ncols: int) -> list[tuple[plt.Axes, Panel]]:
    """One row of axes per group of panels, left-aligned; unused cells removed."""
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    placed = []
    for row_axes, row in zip(axes, rows):
        for i, ax in enumerate(row_axes):
            if i < len(row):
                placed.append((ax, row[i]))
            else:
                fig.delaxes(ax)
    return placed


def _drop_legend(ax: plt.Axes) -> None:
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()


def _finish_panel(ax: plt.Axes, panel: Panel) -> None:
    if panel.scale == "log":  # set after plotting: seaborn then averages values, not their logs
        log_axis(ax, "y", formatter=None)  # at least two labelled ticks, in scientific notation
    if panel.convention is not None:
        setattr(ax, _PANEL_FLAG, panel.scale == "log10")
    if panel.zero_line:
        ax.axhline(0.0, color="0.6", lw=0.8, ls=":", zorder=0)
    ax.set_ylabel(panel.ylabel)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    sns.despine(ax=ax)


def _rows(panels: Sequence[Panel], qs: Sequence[float]) -> list[list[Panel]]:
    """Path-norm panels one row per convention, the other panels in rows of ``max(len(qs), 3)``."""
    norms: dict[str, list[Panel]] = {}
    for p in panels:
        if p.convention is not None:
            norms.setdefault(p.convention, []).append(p)
    others = [p for p in panels if p.convention is None]
    width = max(len(qs), 3)
    return [*norms.values(), *[others[i : i + width] for i in range(0, len(others), width)]]


def imp_figure(
    df: pd.DataFrame,
    sparsity_by_round: Mapping[int, float],
    qs_panels: Sequence[float] = (1, 2, 4),
    title: str = "",
    *,
    conventions: Sequence[str] | None = None,
    gap: str = "running",
    round_col: str = "round",
) -> plt.Figure:
    """Figure 4 (IMP): path-norms and accuracies vs epoch, one line per IMP round.

    Rows of panels: the L^q path-norms for each q of ``qs_panels`` in the original code's
    convention (gbrg24, what the paper plots; log y, see the module docstring for the overflow
    fallback), the same by definition (exact) below, then the top-1 generalisation gap
    (percentage points), the train top-1 and the test top-1 (%), train measured as ``gap`` says
    (default ``running``, the paper's). See :func:`imp_frame` for the data. Colour encodes the
    round on a sequential palette; a colourbar lists each round and its weight sparsity.

    Args:
        df: rows from :func:`load_runs` with key ``round_col``.
        sparsity_by_round: round -> sparsity (fraction of zero weights, in [0, 1]).
        qs_panels: exponents q of the path-norm panels.
        title: figure title (none when empty).
        conventions: path-norm conventions, one row each (default: those logged, gbrg24 first).
        gap: train measure of the gap and train panels, ``running`` or ``eval`` (:data:`GAPS`).
        round_col: the round key column.

    Returns:
        The figure: its panels in ``fig.axes`` order (row by row), then the colourbar's axes.
    """
    rounds = sorted(pd.unique(df[round_col]))
    if not rounds:
        raise ValueError("no IMP rounds to plot")
    frame, panels = imp_frame(df, qs_panels, conventions=conventions, gap=gap, round_col=round_col)
    cmap = sns.color_palette("flare", as_cmap=True)
    norm = mpl.colors.BoundaryNorm(np.arange(len(rounds) + 1) - 0.5, cmap.N)
    colours = {r: cmap(norm(i)) for i, r in enumerate(rounds)}
    labels = {r: _round_label(r, sparsity_by_round) for r in rounds}

    rows = _rows(panels, qs_panels)
    ncols = max(len(r) for r in rows)
    fig = plt.figure(figsize=(4.2 * ncols, 3.3 * len(rows)), layout="constrained")
    placed = _panel_grid(fig, rows, ncols)
    by_panel = dict(tuple(frame.groupby("panel", sort=False)))
    for ax, panel in placed:
        sub = by_panel.get(panel.name, frame.iloc[:0])
        for r in rounds:
            line = sub[sub[round_col] == r]
            if not line.empty:
                ax.plot(line["epoch"], line["value"], color=colours[r], lw=1.4, label=labels[r])
        _finish_panel(ax, panel)

    mappable = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=[ax for ax, _ in placed], ticks=np.arange(len(rounds)), shrink=0.9, aspect=40)
    bar.ax.set_yticklabels([labels[r] for r in rounds], fontsize=7)
    bar.set_label("IMP round (weight sparsity)")
    if title:
        fig.suptitle(title)
    return fig


def _round_label(r: Any, sparsity_by_round: Mapping[int, float]) -> str:
    """ "3 (48.8%)": the round and its sparsity, "0 (dense)" for the dense one, or just the round
    when its sparsity is not given."""
    s = sparsity_by_round.get(r)
    if s is None and _is_int_like(r):
        s = sparsity_by_round.get(int(r))
    if s is not None and float(s) == 0.0:
        return f"{r} (dense)"
    return f"{r} ({100 * s:.1f}%)" if s is not None else f"{r}"


def _is_int_like(x: Any) -> bool:
    try:
        return float(x) == int(x)
    except (TypeError, ValueError, OverflowError):
        return False


def subsets_figure(
    df: pd.DataFrame,
    title: str = "",
    *,
    q: float = 1,
    conventions: Sequence[str] | None = None,
    gap: str = "running",
    fraction_col: str = "fraction",
    seed_col: str = "seed",
) -> plt.Figure:
    """Figure 5 (growing training subsets): gaps and the L^q path-norm vs epoch, one line per fraction.

    Panels (see :func:`subsets_frame`): the top-1 and cross-entropy generalisation gaps with the
    train measure ``gap`` (default ``running``, the paper's), then the L^q path-norm in the
    original code's convention (gbrg24, what the paper plots) and by definition (exact), log y;
    two rows of two when there are four panels. Each line is the arithmetic mean over seeds at
    each epoch (seaborn ``lineplot``; for a path-norm, the mean of ``10**log10``), and the band
    spans the seeds' minimum to maximum. Lines are labelled "1/8" for fraction 1/2**k, else by
    the decimal fraction.

    Returns:
        The figure; the legend is on the first panel.
    """
    fractions = sorted(pd.unique(df[fraction_col]))
    if not fractions:
        raise ValueError("no subset runs to plot")
    frame, panels = subsets_frame(
        df, q=q, conventions=conventions, gap=gap, fraction_col=fraction_col, seed_col=seed_col
    )
    colours = dict(zip(fractions, sns.color_palette("flare", n_colors=len(fractions))))
    ncols = 2 if len(panels) == 4 else len(panels)
    rows = [panels[i : i + ncols] for i in range(0, len(panels), ncols)]
    fig = plt.figure(figsize=(4.3 * ncols if ncols > 2 else 5.4 * ncols, 3.6 * len(rows)), layout="constrained")
    placed = _panel_grid(fig, rows, ncols)
    for ax, panel in placed:
        sub = frame[frame["panel"] == panel.name]
        for f in fractions:
            line = sub[sub[fraction_col] == f]
            if line.empty:
                continue
            sns.lineplot(
                data=line,
                x="epoch",
                y="value",
                ax=ax,
                color=colours[f],
                label=fraction_label(f),
                estimator="mean",
                errorbar=("pi", 100),
                lw=1.4,
            )
        _drop_legend(ax)
        _finish_panel(ax, panel)
    placed[0][0].legend(title="fraction of train set", fontsize=8, title_fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def margin_histograms(
    margins: Mapping[str, np.ndarray],
    title: str = "",
    train_top1: Mapping[str, float] | None = None,
    bins: int = 100,
) -> plt.Figure:
    """Figure 3: overlaid histograms (``bins`` bins each, shared edges) of the train margins per model.

    Args:
        margins: model name -> 1-D array of margins (true-class logit minus best other logit).
        title: figure title (none when empty).
        train_top1: optional model name -> train top-1 as a FRACTION; the legend then reads
            "name, train top-1 = 78.00%".
        bins: number of bins.

    Returns:
        A one-panel figure with one histogram (a ``BarContainer``) per model and a line at 0.
    """
    if not margins:
        raise ValueError("no margins to plot")
    arrays = {k: np.asarray(v, dtype=float).ravel() for k, v in margins.items()}
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    colours = sns.color_palette("rocket", n_colors=len(arrays) + 1)  # the last (lightest) one is unused
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for (name, values), colour in zip(arrays.items(), colours):
        label = name
        if train_top1 is not None and name in train_top1:
            label = f"{name}, train top-1 = {100 * train_top1[name]:.2f}%"
        ax.hist(values[np.isfinite(values)], bins=list(edges), color=colour, alpha=0.6, label=label)
    ax.axvline(0.0, color="0.2", lw=1.0, ls="--")
    ax.set_xlabel("margin (true-class logit − max other logit)")
    ax.set_ylabel("number of training samples")
    ax.legend(fontsize=8)
    sns.despine(ax=ax)
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------------------------
# Tables


def _pathnorm_log10(entry: Mapping[str, Any]) -> float:
    log10 = entry.get("log10")
    if log10 is None:
        value = entry.get("value")
        if value is None:
            return float("nan")
        value = float(value)
        return (
            math.log10(value) if value > 0 and math.isfinite(value) else (float("-inf") if value == 0 else float("nan"))
        )
    return float(log10)


def _pathnorm_value(entry: Mapping[str, Any]) -> float:
    value = entry.get("value")
    if value is not None:
        return float(value)
    log10 = _pathnorm_log10(entry)
    if math.isnan(log10):
        return float("nan")
    try:
        return 10.0**log10
    except OverflowError:
        return float("inf")


def pretrained_table(summaries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Table 3: the path-norms of each pretrained model, one row per model.

    Columns: ``name``, ``source``, ``dataset``; then per q present (ascending) the exact values
    ``L{q:g}`` and their ``log10_L{q:g}``; then the original code's convention as
    ``gbrg24_L{q:g}`` and ``gbrg24_log10_L{q:g}`` (the same names as the training CSVs). A value
    may be inf when it does not fit a float; its log10 is then still finite. A missing value is
    recomputed from log10 and vice versa.
    """
    rows = []
    qs: dict[str, set[float]] = {c: set() for c in CONVENTIONS}
    for s in summaries:
        row: dict[str, Any] = {"name": s["name"], "source": s.get("source", ""), "dataset": s.get("dataset", "")}
        for entry in s.get("pathnorms", []):
            convention = entry.get("convention", "exact")
            q = float(entry["q"])
            row[value_column(q, convention)] = _pathnorm_value(entry)
            row[log10_column(q, convention)] = _pathnorm_log10(entry)
            qs[convention].add(q)
        rows.append(row)
    columns = ["name", "source", "dataset"]
    for convention in CONVENTIONS:
        ordered = sorted(qs[convention])
        columns += [value_column(q, convention) for q in ordered] + [log10_column(q, convention) for q in ordered]
    return pd.DataFrame(rows, columns=columns)


def margin_table(summaries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Table 5: per model, ``n`` (train samples evaluated), ``train_top1`` (a fraction) and the
    five train-margin quantiles ``margin_q0`` ... ``margin_q1`` (see :data:`MARGIN_QUANTILES`)."""
    rows = []
    for s in summaries:
        quantiles = s.get("quantiles", {})
        row = {"name": s["name"], "n": s.get("n"), "train_top1": s.get("train_top1")}
        row.update({k: quantiles.get(k, float("nan")) for k in MARGIN_QUANTILES})
        rows.append(row)
    return pd.DataFrame(rows, columns=["name", "n", "train_top1", *MARGIN_QUANTILES])


BOUND_COLUMNS = ("setting", "arch", "D", "B", "K", "P", "d_in", "d_out", "n", "bound", "sharpened")


def bound_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Table 2: the architecture/data factor of the Theorem 3.1 bound per (setting, arch), in the
    given order. Columns: setting, arch, D, B, K, P, d_in, d_out, n, bound, sharpened (+ any extra keys)."""
    frame = pd.DataFrame(list(rows))
    missing = [c for c in BOUND_COLUMNS if c not in frame.columns]
    if missing:
        raise KeyError(f"bound rows lack {missing}")
    extra = [c for c in frame.columns if c not in BOUND_COLUMNS]
    return frame[list(BOUND_COLUMNS) + extra]


# ----------------------------------------------------------------------------------------------
# Markdown


def sci_from_log10(log10: float, digits: int = 3) -> str:
    """``1.322e+30`` from log10 = 30.1214; works beyond float range (``1.000e+500``); "" for NaN."""
    if log10 is None or (isinstance(log10, float) and math.isnan(log10)):
        return ""
    log10 = float(log10)
    if math.isinf(log10):
        return "0" if log10 < 0 else "inf"
    exponent = math.floor(log10)
    mantissa = round(10.0 ** (log10 - exponent), digits)
    if mantissa >= 10.0:
        mantissa, exponent = mantissa / 10.0, exponent + 1
    return f"{mantissa:.{digits}f}e{exponent:+03d}"


def _fixed(digits: int) -> Callable[[Any], str]:
    return lambda v: "" if v is None or pd.isna(v) else f"{float(v):.{digits}f}"


def _int(v: Any) -> str:
    return "" if v is None or pd.isna(v) else f"{int(v):,d}"


def frame_markdown(
    frame: pd.DataFrame, formats: Mapping[str, Callable[[Any], str]], headers: Mapping[str, str] | None = None
) -> str:
    """A Markdown table of ``frame``'s columns in ``formats`` (column -> formatter), in that order.

    Same conventions as :func:`sparselab.studies.oneshot.report.to_markdown` (which is specific to the
    one-shot accuracy table): pre-formatted strings, no number parsing, text columns left-aligned,
    numbers right-aligned, trailing newline.
    """
    headers = dict(headers or {})
    view = pd.DataFrame({headers.get(c, c): frame[c].map(fmt) for c, fmt in formats.items()})
    align = ["left" if not pd.api.types.is_numeric_dtype(frame[c]) else "right" for c in formats]
    return view.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def pretrained_markdown(table: pd.DataFrame, convention: str = "exact") -> str:
    """Table 3 in Markdown for one convention: path-norms in scientific notation (from log10)."""
    _check_convention(convention)
    prefix = "log10_" if convention == "exact" else f"{convention}_log10_"
    logs = [c for c in table.columns if c.startswith(prefix)]
    view = pd.DataFrame({"model": table["name"]})
    for c in logs:
        view[c.removeprefix(prefix)] = table[c]
    formats: dict[str, Callable[[Any], str]] = {"model": str}
    formats.update({c: sci_from_log10 for c in view.columns if c != "model"})
    return frame_markdown(view, formats)


def margin_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """Table 5 in Markdown: train top-1 in %, margin quantiles fixed-point."""
    formats: dict[str, Callable[[Any], str]] = {"name": str, "n": _int, "train_top1": lambda v: _fixed(2)(100 * v)}
    formats.update({k: _fixed(digits) for k in MARGIN_QUANTILES})
    headers = {"name": "model", "train_top1": "train top-1 (%)", **_QUANTILE_HEADERS}
    return frame_markdown(table, formats, headers)


def bound_markdown(table: pd.DataFrame) -> str:
    """Table 2 in Markdown: integers with thousands separators, B and the bounds fixed-point."""
    formats: dict[str, Callable[[Any], str]] = {"setting": str, "arch": str}
    formats.update({c: _int for c in ("D", "K", "P", "d_in", "d_out", "n")})
    formats.update({"B": _fixed(4), "bound": _fixed(4), "sharpened": _fixed(4)})
    return frame_markdown(table, formats, {"bound": "bound (Thm 3.1)", "sharpened": "sharpened"})


def summary_markdown(
    summary: pd.DataFrame, key_names: Sequence[str], qs: Sequence[float] = (1, 2, 4), convention: str = "exact"
) -> str:
    """An :func:`epoch_summary` in Markdown: keys, epoch, accuracies/gaps fixed, path-norms scientific."""
    formats: dict[str, Callable[[Any], str]] = {}
    for k in key_names:
        if k in summary.columns:
            formats[k] = (
                fraction_label
                if k == "fraction"
                else (lambda v: f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v))
            )
    for c, fmt in [
        ("n_runs", _int),
        ("epoch", _fixed(0)),
        ("train_top1_pct", _fixed(2)),
        ("test_top1_pct", _fixed(2)),
        ("top1_gap_pct", _fixed(2)),
        ("ce_gap", _fixed(3)),
    ]:
        if c in summary.columns:
            formats[c] = fmt
    headers = {
        "train_top1_pct": "train top-1 (%)",
        "test_top1_pct": "test top-1 (%)",
        "top1_gap_pct": "top-1 gap (%)",
        "ce_gap": "CE gap",
    }
    for q in qs:
        c = log10_column(q, convention)
        if c in summary.columns:
            formats[c] = sci_from_log10
            headers[c] = value_column(q, convention)
    return frame_markdown(summary, formats, headers)


def write_table(frame: pd.DataFrame, out_csv: str | Path, out_md: str | Path, markdown: str) -> None:
    """Write ``frame`` as CSV and ``markdown`` next to it, both atomically."""
    atomic_write_with(out_csv, lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write_text(out_md, markdown)
