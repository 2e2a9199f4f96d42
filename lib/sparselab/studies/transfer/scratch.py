"""The transfer study's baseline: the upstream's architecture trained from scratch on the downstream data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ...train.run import RunFiles, run_training
from ..base.summary import write_summary
from .summaries import test_metrics


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
    return write_summary(
        summary_json, {"mode": "scratch", "epochs": recipe.epochs, "backbone_sparsity": 0.0}, test_metrics(result)
    )
