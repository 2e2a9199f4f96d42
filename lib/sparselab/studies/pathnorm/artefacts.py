"""The path-norm study's figure artefacts, one function per workflow rule (Tables 3, 5 with Figure 3,
Figures 4, 5 with their CSVs): read the pipeline's outputs, build with :mod:`.report`, write
atomically. Table 2 (the bound) is :mod:`.bound`, so that its rule never covers figure code here.
No torch import: these jobs stay light."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from ..base.records import write_frame
from . import report as pn


def write_pretrained_report(
    summaries: Sequence[str | Path],
    margins: Sequence[str | Path],
    *,
    table3: tuple[str | Path, str | Path],
    table5: tuple[str | Path, str | Path],
    figure: tuple[str | Path, str | Path],
    title: str = "",
) -> None:
    """Table 3 (path-norms, both conventions), Table 5 (margin quantiles) and Figure 3."""
    from safetensors.numpy import load_file

    records = [json.loads(Path(p).read_text()) for p in summaries]
    paths = pn.pretrained_table(records)
    conventions = sorted({e["convention"] for r in records for e in r["pathnorms"]}, key=pn.CONVENTIONS.index)
    md = "".join(f"\n**{c}** (log10 shown as a.bc e+k)\n\n" + pn.pretrained_markdown(paths, c) for c in conventions)
    pn.write_table(paths, *table3, md.lstrip("\n"))
    quantiles = pn.margin_table(records)
    pn.write_table(quantiles, *table5, pn.margin_markdown(quantiles))
    arrays = {r["name"]: load_file(str(m))["margins"] for r, m in zip(records, margins)}
    fig = pn.margin_histograms(
        arrays,
        title=f"{title}: train margins" if title else "",
        train_top1={r["name"]: r["train_top1"] for r in records},
    )
    pn.save_figure(fig, *figure)
    plt.close(fig)


def write_imp_figure(
    runs: Sequence[Sequence[Any]],
    sparsity_by_round: Mapping[Any, float],
    out_csv: str | Path,
    pdf: str | Path,
    png: str | Path,
    title: str = "",
    gap: str = "running",
) -> None:
    """Figure 4 from ``[round, seed, metrics.csv]`` triples (the first seed is plotted, every
    seed's last epoch goes to the CSV, with both gaps); ``gap`` is the plotted one (``pathnorm.gap``)."""
    frame = pn.load_runs({(int(r), int(s)): p for r, s, p in runs}, ("round", "seed"))
    write_frame(pn.epoch_summary(frame, ("round", "seed"), gap=gap), out_csv)
    first = frame[frame["seed"] == frame["seed"].min()]
    sparsity = {int(k): float(v) for k, v in sparsity_by_round.items()}
    fig = pn.imp_figure(first, sparsity, title=f"{title}: IMP with rewinding" if title else "", gap=gap)
    pn.save_figure(fig, pdf, png)
    plt.close(fig)


def write_subsets_figure(
    runs: Sequence[Sequence[Any]],
    out_csv: str | Path,
    pdf: str | Path,
    png: str | Path,
    title: str = "",
    gap: str = "running",
) -> None:
    """Figure 5 from ``[fraction, seed, metrics.csv]`` triples, averaged over seeds (the CSV has
    both gaps; ``gap`` is the plotted one, ``pathnorm.gap``)."""
    frame = pn.load_runs({(float(f), int(s)): p for f, s, p in runs}, ("fraction", "seed"))
    summary = pn.epoch_summary(frame, ("fraction", "seed"), average_over=("seed",), gap=gap)
    write_frame(summary, out_csv)
    fig = pn.subsets_figure(frame, title=f"{title}: growing training subsets" if title else "", gap=gap)
    pn.save_figure(fig, pdf, png)
    plt.close(fig)
