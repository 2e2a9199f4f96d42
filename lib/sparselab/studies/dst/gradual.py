"""The DST study's ``gradual`` baseline: gradual magnitude pruning of a dense checkpoint
(:mod:`sparselab.dst.gmp`) with the DSR code's clock and schedules, and its ``summary.json``."""

from __future__ import annotations

from pathlib import Path

from ...config import ComputeHparams, DataHparams, TrainHparams
from ...dst.gmp import GradualSpec, train_gradual
from ...io.checkpoint import read_meta
from ...models.spec import ArchSpec
from ...train.engine import TrainResult
from ...train.run import RunFiles
from ..base.summary import write_summary
from .common import run_summary
from .options import DstOptions

__all__ = ["run_gradual_pruning", "gradual_spec"]


def run_gradual_pruning(
    files: RunFiles,
    summary_json: str | Path,
    *,
    dense: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    spec: GradualSpec,
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """Gradual pruning of a dense checkpoint (:func:`sparselab.dst.gmp.train_gradual`), then the summary."""
    result = train_gradual(files, dense=dense, data=data, recipe=recipe, spec=spec, seed=seed, compute=compute)
    arch = ArchSpec.from_dict(read_meta(dense)["arch"])  # the dense checkpoint's (train_gradual checked it)
    write_summary(summary_json, {"method": "gradual"}, run_summary(result, result.model, arch))
    return result


def gradual_spec(sparsity: float, options: DstOptions) -> GradualSpec:
    """The :class:`GradualSpec` of one ``gradual`` run from a ``dst`` experiment's options (every
    field from them: they state the defaults)."""
    g = options.gradual
    if g is None:
        raise ValueError("the gradual method needs the experiment's gradual block")
    return GradualSpec(
        target=float(sparsity),
        target_fc=options.sparsity_fc,
        sparse_layers=options.layers,
        start=g.start,
        freq=g.freq,
        iterations=g.iterations,
        schedule=g.schedule,
        by=g.by,
        output_layer=g.output_layer,
        output_cap=g.output_cap,
        ramp=None,
    )
