"""What every study's figures share: the headless backend, saving as PDF (for papers) and PNG (for
the report), log axes with readable ticks, and how the dense baseline is drawn and named in a legend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: jobs run without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter  # noqa: E402

from ..io.atomic import atomic_write_with  # noqa: E402


def save_figure(fig: plt.Figure, pdf: str | Path, png: str | Path, dpi: int = 150) -> None:
    atomic_write_with(pdf, lambda tmp: fig.savefig(tmp, format="pdf", bbox_inches="tight"))
    atomic_write_with(png, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)


DENSE_STYLE: dict[str, Any] = {"color": "0.35", "lw": 1.2, "ls": ":"}
"""How every study draws its dense baseline as a horizontal reference line."""


def compact_number(x: float, _pos: Any = None) -> str:
    """Tick label without exponents: 2000 -> "2k", 1.5e6 -> "1.5M", 0.5 -> "0.5"."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def log_axis(ax: plt.Axes, axis: str = "x", formatter: Callable[[float, Any], str] | None = compact_number) -> None:
    """Log scale with at least two labelled ticks, set after plotting (it reads the limits).

    Decades alone leave one labelled tick when the data span under about two decades (matplotlib
    then hides its minor labels), so the ticks step 1-2-5 or 1..9 per decade until three (else
    two) fall inside the limits. Under that (less than a factor of ~2), matplotlib's own ticks stay: it labels every
    minor tick there. ``formatter=None``: scientific notation (``2×10³``), for values over many
    orders of magnitude.
    """
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    steps = ((1.0,), (1.0, 2.0, 5.0), tuple(float(k) for k in range(1, 10)))
    inside = {subs: sum(lo <= m * 10.0**e <= hi for e in decades for m in subs) for subs in steps}  # LogLocator
    chosen = next((s for s in steps if inside[s] >= 3), None) or next((s for s in steps if inside[s] >= 2), None)
    if chosen is None:  # would turn to linear ticks itself below two
        return
    target.set_major_locator(LogLocator(base=10.0, subs=chosen))
    if formatter is None:  # every major tick labelled, whatever the span
        target.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(np.inf, np.inf)))
    else:
        target.set_major_formatter(FuncFormatter(formatter))
    target.set_minor_formatter(NullFormatter())


def add_to_legend(grid: sns.FacetGrid, label: str, handle: Any) -> None:
    """Let a line drawn by hand (the dense baseline) join the grid's legend: seaborn builds it from
    the hue and style levels only. Call before ``grid.add_legend()``."""
    grid._legend_data.setdefault(label, handle)  # seaborn's store of the legend entries (private, stable)
