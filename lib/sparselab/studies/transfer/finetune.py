"""Full finetuning of a sparse upstream (backbone masks kept) and the from-scratch baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ...config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ...io.atomic import atomic_write_json
from ...train.run import RunFiles, run_training
from ...transfer.full import run_full_finetuning
from .common import backbone_sparsity
from .summaries import test_metrics


def run_full(
    files: RunFiles,
    summary_json: str | Path,
    *,
    upstream: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    lr: float | None,
    seed: int,
    compute: ComputeHparams,
) -> dict[str, Any]:
    """Full finetuning (backbone masks kept) with the downstream dataset's lr; last-epoch test metrics."""
    if lr is not None:
        recipe = dataclasses.replace(recipe, optimizer=dataclasses.replace(recipe.optimizer, lr=float(lr)))
    result = run_full_finetuning(files, upstream=upstream, data=data, recipe=recipe, seed=seed, compute=compute)
    summary = {"mode": "full", "lr": recipe.optimizer.lr, "epochs": recipe.epochs,
               "backbone_sparsity": backbone_sparsity(result.model),
               **test_metrics(result)}  # fmt: skip
    atomic_write_json(summary_json, summary)
    return summary


def run_scratch(
    files: RunFiles,
    summary_json: str | Path,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
) -> dict[str, Any]:
    """The baseline: the upstream's architecture trained from scratch on the downstream data."""
    result = run_training(files, data=data, model=model, recipe=recipe, seed=seed, compute=compute, method="scratch")
    summary = {"mode": "scratch", "epochs": recipe.epochs, "backbone_sparsity": 0.0,
               **test_metrics(result)}  # fmt: skip
    atomic_write_json(summary_json, summary)
    return summary
