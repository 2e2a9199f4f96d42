"""The final training of a gradient-flow run: ordinary fine-tuning of the pruned checkpoint
(:func:`sparselab.train.run.run_finetuning`, masks enforced) with the final recipe, then its
summary (:mod:`.summary`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import ComputeHparams, DataHparams, TrainHparams
from ...train.run import RunFiles, run_finetuning
from ..base.summary import write_summary
from .summary import summarize


def run_final_training(
    files: RunFiles,
    summary_json: str | Path,
    *,
    pruned: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
) -> dict[str, Any]:
    """Train the pruned checkpoint with the final recipe (masks enforced; epoch 0 of the metrics
    is the accuracy right after the last round) and write its summary."""
    result = run_finetuning(
        files, init_checkpoint=pruned, data=data, recipe=recipe, seed=seed, compute=compute, method="gradflow_final"
    )
    return write_summary(
        summary_json, summarize(files.checkpoint, result.final), {"selected_epoch": result.selected_epoch}
    )
