"""AC/DC upstreams from scratch (Peste et al., 2021; the transfer study's AC/DC models)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ...dst.acdc import ACDC
from ...dst.layers import sparse_tensors
from ...train.engine import TrainResult
from ...train.run import RunFiles, run_training
from ..base.summary import write_summary
from .summaries import upstream_summary


def run_acdc(
    files: RunFiles,
    summary_json: str | Path,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    sparsity: float,
    sparse_layers: str | Sequence[str],
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """AC/DC from scratch: the dense/sparse calendar over ``recipe.epochs``, global magnitude over
    ``sparse_layers``; the final model is the sparse one of the last epoch."""
    layers = sparse_layers if isinstance(sparse_layers, str) else list(sparse_layers)
    callback = ACDC(lambda net: sparse_tensors(net, model.arch, layers), sparsity, recipe.epochs)
    result = run_training(
        files, data=data, model=model, recipe=recipe, seed=seed, compute=compute, method="acdc", callbacks=(callback,)
    )
    if result.mask is None or abs(result.mask.sparsity - sparsity) > 1.0 / result.mask.numel + 1e-9:
        raise RuntimeError(
            f"AC/DC did not end in a sparse phase at {sparsity} (mask: {result.mask and result.mask.sparsity})"
        )
    write_summary(summary_json, upstream_summary(result, "acdc", sparsity))
    return result
