"""The path-norm study's per-epoch analysis (Gonon, Brisebarre, Riccietti, Gribonval, ICLR 2024):
L^q path-norms, train-margin quantiles and eval-mode train accuracy/loss on a seeded,
non-augmented train subset (:class:`PathNormAnalysis`, an engine callback, and :func:`analyse`).

Deliberate differences to the original code (see docs/pathnorm.md): path-norms by their
definition (``convention="exact"``) logged beside the original's numbers (``gbrg24``), margins
and an extra train accuracy in eval mode on non-augmented data, and no state corrupted by the
path-norm computation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ...data import make_loader
from ...data.splits import subset_indices, take
from ...metrics.margin_stats import logit_statistics, margin_quantiles
from ...metrics.pathnorm import path_norms
from ...train.callbacks import Callback, TrainContext
from .options import AnalysisSpec

log = logging.getLogger("sparselab")


def norm_column(q: float, convention: str = "exact", log10: bool = False) -> str:
    """CSV column of a path-norm: ``L1``, ``log10_L2``, ``gbrg24_L4``, ``gbrg24_log10_L4``..."""
    name = f"{'log10_' if log10 else ''}L{q:g}"
    return name if convention == "exact" else f"{convention}_{name}"


def analysis_subset(dataset: torch.utils.data.Dataset, samples: int | None, seed: int) -> torch.utils.data.Dataset:
    n = len(dataset)  # type: ignore[arg-type]
    if samples is None or samples >= n:
        return dataset
    return take(dataset, subset_indices(n, samples / n, seed)[:samples])


def analyse(
    model: nn.Module,
    loader: Iterable,
    input_shape: Sequence[int],
    spec: AnalysisSpec,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Path-norms for every q and convention, margin quantiles, eval top-1 and loss: one row."""
    row: dict[str, float] = {}
    for convention in spec.conventions:
        for pn in path_norms(model, spec.qs, tuple(input_shape), convention=convention):
            row[norm_column(pn.q, convention)] = pn.value
            row[norm_column(pn.q, convention, log10=True)] = pn.log10
    stats = logit_statistics(model, loader, device)
    row.update(margin_quantiles(stats.margins))
    row["margin_train_top1"] = stats.top1
    row["margin_train_loss"] = stats.mean_loss
    return row


class PathNormAnalysis(Callback):
    """Adds the path-norm analysis to every epoch's metrics row (and times it)."""

    def __init__(self, spec: AnalysisSpec, input_shape: Sequence[int]) -> None:
        self.spec, self.input_shape = spec, tuple(input_shape)
        self.loader: Any = None

    def on_train_start(self, ctx: TrainContext) -> None:
        subset = analysis_subset(ctx.splits.train_eval, self.spec.margin_samples, self.spec.seed)
        self.loader = make_loader(subset, self.spec.batch_size, shuffle=False, **ctx.loader_options)

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        row.update(analyse(ctx.model, self.loader, self.input_shape, self.spec, ctx.device))
        row["analysis_time_s"] = time.perf_counter() - t0
