"""The final training of a gradient-flow run: ordinary fine-tuning of the pruned checkpoint
(:func:`sparselab.train.run.run_finetuning`, masks enforced) with the final recipe, then its
summary (:mod:`.summary`) with the narrowed network's measured inference speed-up over the dense
architecture on the job's device (:func:`measured_speedup`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ...compute import place
from ...config import ComputeHparams, DataHparams, TrainHparams
from ...metrics.latency import paired_latency
from ...models.checkpoint import load_checkpoint
from ...train.run import RunFiles, run_finetuning
from ..base.summary import write_summary
from .summary import dense_model, summarize

# Inference batch sizes timed: a throughput-like batch and single-sample latency.
LATENCY_BATCH_SIZES = (64, 1)


def measured_speedup(
    checkpoint: str | Path, compute: ComputeHparams, batch_sizes: Sequence[int] = LATENCY_BATCH_SIZES
) -> dict[str, Any]:
    """Inference latency of the checkpoint's (physically narrowed) network against a dense model of
    its architecture, paired in this job on its device and threads, with its autocast and memory
    format: ``latency_b<batch>_{dense_ms,pruned_ms,speedup,threads,device}`` per batch size."""
    ckpt = load_checkpoint(checkpoint)
    placement = place(compute)
    pruned = placement.model(ckpt.model)
    dense = placement.model(dense_model(ckpt.spec))
    g = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {}
    for batch in batch_sizes:
        x = placement.batch(torch.randn(batch, *ckpt.spec.input_shape, generator=g))
        out.update(paired_latency(dense, pruned, x, context=placement.autocast).to_dict(f"latency_b{batch}"))
    return out


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
    is the accuracy right after the last round) and write its summary with the measured speed-up."""
    result = run_finetuning(
        files,
        init_checkpoint=pruned,
        data=data,
        recipe=recipe,
        seed=seed,
        compute=compute,
        method="gradflow_final",
        role="pruned",
    )
    return write_summary(
        summary_json,
        summarize(files.checkpoint, result.final),
        {"selected_epoch": result.selected_epoch, **measured_speedup(files.checkpoint, compute)},
    )
