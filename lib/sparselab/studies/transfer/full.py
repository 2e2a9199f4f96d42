"""Full finetuning of a sparse upstream on a downstream dataset, the backbone masks kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ...config import ComputeHparams, DataHparams, TrainHparams
from ...train.run import RunFiles
from ...transfer.full import run_full_finetuning
from ..base.summary import write_summary
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
    return write_summary(
        summary_json,
        {
            "mode": "full",
            "lr": recipe.optimizer.lr,
            "epochs": recipe.epochs,
            "backbone_sparsity": backbone_sparsity(result.model),
        },
        test_metrics(result),
    )
