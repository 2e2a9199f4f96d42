"""GMP upstreams: gradual magnitude pruning of the dense upstream (the AC/DC repo's global variant
and polynomial ramp)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...config import ComputeHparams, DataHparams, GmpRamp, TrainHparams
from ...dst.gmp import GradualSpec, train_gradual
from ...train.engine import TrainResult
from ...train.run import RunFiles
from ..base.summary import write_summary
from .summaries import upstream_summary


def run_gmp(
    files: RunFiles,
    summary_json: str | Path,
    *,
    dense: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    sparsity: float,
    options: Mapping[str, Any],
    sparse_layers: str | Sequence[str],
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """GMP of the dense upstream: the AC/DC repo's polynomial ramp (``options``: the
    :class:`GmpRamp` keys) to ``sparsity`` under one global magnitude threshold over
    ``sparse_layers`` (its global variant), then training to the end."""
    layers = sparse_layers if isinstance(sparse_layers, str) else tuple(sparse_layers)
    spec = GradualSpec(target=float(sparsity), sparse_layers=layers, by="threshold", ramp=GmpRamp.from_options(options))
    result = train_gradual(files, dense=dense, data=data, recipe=recipe, spec=spec, seed=seed, compute=compute)
    write_summary(summary_json, upstream_summary(result, "gmp", sparsity))
    return result
