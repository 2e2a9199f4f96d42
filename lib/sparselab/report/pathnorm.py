"""Tables and figures of the path-norm study (Gonon et al., ICLR 2024: Tables 2, 3, 5, Figures 3, 4, 5).

Inputs are the pipeline's files: per-epoch metrics CSVs of the training engine (one per run), the
pretrained-model summaries (dicts read from JSON by the caller), their margin arrays, and the rows
of the bound table. Only pandas, numpy, seaborn and matplotlib are imported here (no torch).

Conventions shared by every figure and table of this module:

* **Train accuracy and loss** are ``margin_train_top1`` and ``margin_train_loss``: measured in eval
  mode on a non-augmented subset of the training set, at the same weights as the test metrics.
  The ``train_top1``/``train_loss`` columns (a running average over the epoch, train mode,
  augmented data) are not used for generalisation gaps.
* **Generalisation gaps**: top-1 gap = ``margin_train_top1 - test_top1`` in percentage points;
  cross-entropy gap = ``test_loss - margin_train_loss`` (nats).
* **Path-norms** are plotted from the always-finite ``log10_L{q:g}`` columns (``gbrg24_log10_L{q:g}``
  for the original code's convention), never from ``L{q:g}``, which may be ``inf``: a panel shows
  ``y = 10**log10`` on a log-scaled axis. Only if a panel holds a value whose ``10**log10`` leaves
  the comfortable float64 range (``|log10| > 300``) does it plot ``log10`` itself on a linear
  axis labelled "log10 L_q" instead; :func:`pathnorm_panel_is_log10` tells which one a panel used.
* **Markdown**: path-norms (which span tens of orders of magnitude) in scientific notation,
  formatted from ``log10`` so values beyond float range still print; everything else fixed-point.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..io.atomic import atomic_write_text, atomic_write_with
from .figures import save_figure  # also selects the headless Agg backend

__all__ = [
    "BOUND_COLUMNS",
    "CONVENTIONS",
    "MARGIN_QUANTILES",
    "add_gaps",
    "bound_markdown",
    "bound_table",
    "epoch_summary",
    "fraction_label",
    "frame_markdown",
    "imp_figure",
    "load_runs",
    "log10_column",
    "margin_histograms",
    "margin_markdown",
    "margin_table",
    "pathnorm_panel_is_log10",
    "pretrained_markdown",
    "pretrained_table",
    "save_figure",
    "sci_from_log10",
    "subsets_figure",
    "summary_markdown",
    "value_column",
    "write_table",
]

MARGIN_QUANTILES: tuple[str, ...] = ("margin_q0", "margin_q1_3", "margin_q1_2", "margin_q2_3", "margin_q1")
"""The p-quantiles of the train margins for p = e, (2e+1)/3, (e+1)/2, (e+2)/3, 1 (e = train top-1 error)."""
_QUANTILE_HEADERS = {
    "margin_q0": "q(e)", "margin_q1_3": "q((2e+1)/3)", "margin_q1_2": "q((e+1)/2)",
    "margin_q2_3": "q((e+2)/3)", "margin_q1": "max",
}  # fmt: skip
CONVENTIONS = ("exact", "gbrg24")
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


def add_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with the plotted quantities added, from the eval-mode train metrics.

    ``train_top1_pct`` = 100 * ``margin_train_top1`` (eval mode, non-augmented train subset),
    ``test_top1_pct`` = 100 * ``test_top1``, ``top1_gap_pct`` = their difference (points) and
    ``ce_gap`` = ``test_loss - margin_train_loss``. Missing source columns give NaN.
    """
    out = df.copy()
    nan = pd.Series(np.nan, index=df.index, dtype=float)
    train = pd.to_numeric(df["margin_train_top1"], errors="coerce") if "margin_train_top1" in df else nan
    test = pd.to_numeric(df["test_top1"], errors="coerce") if "test_top1" in df else nan
    train_loss = pd.to_numeric(df["margin_train_loss"], errors="coerce") if "margin_train_loss" in df else nan
    test_loss = pd.to_numeric(df["test_loss"], errors="coerce") if "test_loss" in df else nan
    out["train_top1_pct"] = 100 * train
    out["test_top1_pct"] = 100 * test
    out["top1_gap_pct"] = 100 * (train - test)
    out["ce_gap"] = test_loss - train_loss
    return out


def epoch_summary(df: pd.DataFrame, key_names: Sequence[str], average_over: Sequence[str] = ()) -> pd.DataFrame:
    """The last epoch of each run (the values a figure shows at its right end), gaps included.

    Args:
        df: rows from :func:`load_runs`.
        key_names: the run key columns, e.g. ``("round",)`` or ``("fraction", "seed")``.
        average_over: key columns to average out (e.g. ``("seed",)`` for the subsets figure, which
            plots means over seeds): numeric columns are then arithmetic means over those runs'
            last epochs, ``log10_L*`` columns are log10 of the arithmetic mean of the path-norms
            (computed in log space, so it is exact beyond float range; the value the figure
            plots), and ``n_runs`` counts the runs.

    Returns:
        One row per run (or per remaining key), sorted by key, with :func:`add_gaps`' columns
        (train accuracy/loss from ``margin_train_*``, i.e. eval mode on a non-augmented subset).
    """
    key_names = list(key_names)
    last = df.sort_values(key_names + ["epoch"], kind="stable").groupby(key_names, sort=True, dropna=False).tail(1)
    last = add_gaps(last).reset_index(drop=True)
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
    """"1/8" when ``fraction`` is 1/2**k (k >= 1), "1" for 1, else the decimal (``:g``)."""
    f = float(fraction)
    if f > 0:
        k = round(-math.log2(f))
        if k >= 0 and math.isclose(f, 2.0**-k, rel_tol=1e-9):
            return "1" if k == 0 else f"1/{2**k}"
    return f"{f:g}"


def pathnorm_panel_is_log10(ax: plt.Axes) -> bool:
    """Whether a path-norm panel plotted ``log10`` on a linear axis (its values overflow float64)."""
    return bool(getattr(ax, _PANEL_FLAG, False))


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


def _prepare_pathnorm(df: pd.DataFrame, q: float, convention: str) -> tuple[pd.DataFrame, bool]:
    """Add a ``_pn`` column: 10**log10 (log-axis panel) or log10 itself when it would overflow."""
    logs = _pathnorm_values(df, q, convention)
    as_log10 = bool((logs.abs() > _LOG10_SAFE).any())
    out = df.assign(_pn=logs if as_log10 else np.power(10.0, logs))
    return out, as_log10


def _finish_pathnorm_axis(ax: plt.Axes, q: float, convention: str, as_log10: bool) -> None:
    name = f"L{q:g} path-norm" + ("" if convention == "exact" else f" ({convention})")
    if as_log10:
        ax.set_ylabel(f"log10 {name}")
    else:
        ax.set_yscale("log")  # set after plotting: seaborn then averages values, not their logs
        ax.set_ylabel(name)
    setattr(ax, _PANEL_FLAG, as_log10)


def _drop_legend(ax: plt.Axes) -> None:
    if ax.get_legend() is not None:
        ax.get_legend().remove()


def imp_figure(
    df: pd.DataFrame,
    sparsity_by_round: Mapping[int, float],
    qs_panels: Sequence[float] = (1, 2, 4),
    title: str = "",
    *,
    convention: str = "exact",
    round_col: str = "round",
) -> plt.Figure:
    """Figure 4 (IMP): path-norms and accuracies vs epoch, one line per IMP round.

    Panels, left to right then top to bottom: the L^q path-norm for each q of ``qs_panels`` (log y;
    see the module docstring for the overflow fallback), the top-1 generalisation error
    ``margin_train_top1 - test_top1`` (percentage points), the train top-1 and the test top-1 (%).
    Train accuracy is ``margin_train_top1``: eval mode on a non-augmented train subset, not the
    running train-mode average. Rows sharing (round, epoch) are averaged. Colour encodes the round
    on a sequential palette; a colourbar lists each round and its weight sparsity.

    Args:
        df: rows from :func:`load_runs` with key ``round_col``.
        sparsity_by_round: round -> sparsity (fraction of zero weights, in [0, 1]).
        qs_panels: exponents q of the path-norm panels.
        title: figure title (none when empty).
        convention: ``"exact"`` (``log10_L*`` columns) or ``"gbrg24"`` (``gbrg24_log10_L*``).
        round_col: the round key column.

    Returns:
        The figure: ``len(qs_panels) + 3`` panels in ``fig.axes`` order, then the colourbar's axes.
    """
    rounds = sorted(pd.unique(df[round_col]))
    if not rounds:
        raise ValueError("no IMP rounds to plot")
    cmap = sns.color_palette("flare", as_cmap=True)
    norm = mpl.colors.BoundaryNorm(np.arange(len(rounds) + 1) - 0.5, cmap.N)
    colours = {r: cmap(norm(i)) for i, r in enumerate(rounds)}
    labels = {r: _round_label(r, sparsity_by_round) for r in rounds}
    data = add_gaps(df)

    n_panels = len(qs_panels) + 3
    ncols = 3
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), layout="constrained", squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n_panels:]:
        fig.delaxes(ax)

    def draw(ax: plt.Axes, frame: pd.DataFrame, y: str) -> None:
        for r in rounds:
            sub = frame[frame[round_col] == r][["epoch", y]].dropna()
            if sub.empty:
                continue
            sub = sub.groupby("epoch", as_index=False)[y].mean()
            ax.plot(sub["epoch"], sub[y], color=colours[r], lw=1.4, label=labels[r])
        ax.set_xlabel("epoch")
        sns.despine(ax=ax)

    for ax, q in zip(flat, qs_panels):
        frame, as_log10 = _prepare_pathnorm(data, q, convention)
        draw(ax, frame, "_pn")
        _finish_pathnorm_axis(ax, q, convention, as_log10)
    rest = flat[len(qs_panels) : n_panels]
    for ax, (y, label) in zip(
        rest,
        [
            ("top1_gap_pct", "top-1 generalisation error (train − test, %)"),
            ("train_top1_pct", "train top-1 (%, eval mode)"),
            ("test_top1_pct", "test top-1 (%)"),
        ],
    ):
        draw(ax, data, y)
        ax.set_ylabel(label)
    rest[0].axhline(0.0, color="0.6", lw=0.8, ls=":", zorder=0)

    mappable = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=flat[:n_panels], ticks=np.arange(len(rounds)), shrink=0.9, aspect=40)
    bar.ax.set_yticklabels([labels[r] for r in rounds], fontsize=7)
    bar.set_label("IMP round (weight sparsity)")
    if title:
        fig.suptitle(title)
    return fig


def _round_label(r: Any, sparsity_by_round: Mapping[int, float]) -> str:
    """"3 (48.8%)": the round and its sparsity, or just the round when its sparsity is not given."""
    s = sparsity_by_round.get(r)
    if s is None and _is_int_like(r):
        s = sparsity_by_round.get(int(r))
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
    convention: str = "exact",
    fraction_col: str = "fraction",
    seed_col: str = "seed",
) -> plt.Figure:
    """Figure 5 (growing training subsets): gaps and the L1 path-norm vs epoch, one line per fraction.

    Panels: top-1 generalisation error ``margin_train_top1 - test_top1`` (percentage points), the
    cross-entropy gap ``test_loss - margin_train_loss`` and the L^q path-norm (log y). The train
    metrics are ``margin_train_*``: eval mode on a non-augmented train subset. Each line is the
    arithmetic mean over seeds at each epoch (seaborn ``lineplot``; for the path-norm, the mean of
    ``10**log10``), and the band spans the seeds' minimum to maximum. Lines are labelled
    "1/8" for fraction 1/2**k, else by the decimal fraction.

    Args:
        df: rows from :func:`load_runs` with keys ``(fraction_col, seed_col)``.
        title: figure title (none when empty).
        q: exponent of the path-norm panel.
        convention: ``"exact"`` or ``"gbrg24"`` path-norm columns.

    Returns:
        The figure with three panels; the legend is on the first one.
    """
    fractions = sorted(pd.unique(df[fraction_col]))
    if not fractions:
        raise ValueError("no subset runs to plot")
    colours = dict(zip(fractions, sns.color_palette("flare", n_colors=len(fractions))))
    data = add_gaps(df)
    pn_frame, as_log10 = _prepare_pathnorm(data, q, convention)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    panels = [
        (axes[0], data, "top1_gap_pct", "top-1 generalisation error (train − test, %)"),
        (axes[1], data, "ce_gap", "cross-entropy gap (test − train)"),
        (axes[2], pn_frame, "_pn", None),
    ]
    for ax, frame, y, ylabel in panels:
        for f in fractions:
            sub = frame[frame[fraction_col] == f][["epoch", seed_col, y]].dropna(subset=[y])
            if sub.empty:
                continue
            sns.lineplot(
                data=sub, x="epoch", y=y, ax=ax, color=colours[f], label=fraction_label(f),
                estimator="mean", errorbar=("pi", 100), lw=1.4,
            )  # fmt: skip
        _drop_legend(ax)
        ax.set_xlabel("epoch")
        if ylabel is not None:
            ax.set_ylabel(ylabel)
        sns.despine(ax=ax)
    axes[0].axhline(0.0, color="0.6", lw=0.8, ls=":", zorder=0)
    axes[1].axhline(0.0, color="0.6", lw=0.8, ls=":", zorder=0)
    _finish_pathnorm_axis(axes[2], q, convention, as_log10)
    axes[0].legend(title="fraction of train set", fontsize=8, title_fontsize=8)
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
        ax.hist(values[np.isfinite(values)], bins=edges, color=colour, alpha=0.6, label=label)
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
        return math.log10(value) if value > 0 and math.isfinite(value) else (float("-inf") if value == 0 else float("nan"))
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


def frame_markdown(frame: pd.DataFrame, formats: Mapping[str, Callable[[Any], str]], headers: Mapping[str, str] | None = None) -> str:
    """A Markdown table of ``frame``'s columns in ``formats`` (column -> formatter), in that order.

    Same conventions as :func:`sparselab.report.tables.to_markdown` (which is specific to the
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


def summary_markdown(summary: pd.DataFrame, key_names: Sequence[str], qs: Sequence[float] = (1, 2, 4), convention: str = "exact") -> str:
    """An :func:`epoch_summary` in Markdown: keys, epoch, accuracies/gaps fixed, path-norms scientific."""
    formats: dict[str, Callable[[Any], str]] = {}
    for k in key_names:
        if k in summary.columns:
            formats[k] = fraction_label if k == "fraction" else (lambda v: f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v))
    for c, fmt in [("n_runs", _int), ("epoch", _fixed(0)), ("train_top1_pct", _fixed(2)), ("test_top1_pct", _fixed(2)),
                   ("top1_gap_pct", _fixed(2)), ("ce_gap", _fixed(3))]:  # fmt: skip
        if c in summary.columns:
            formats[c] = fmt
    headers = {"train_top1_pct": "train top-1 (%)", "test_top1_pct": "test top-1 (%)", "top1_gap_pct": "top-1 gap (%)", "ce_gap": "CE gap"}
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
