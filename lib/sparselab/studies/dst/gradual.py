"""The DST study's ``gradual`` baseline: gradual magnitude pruning of a dense checkpoint
(:mod:`sparselab.dst.gmp`) with the DSR code's clock and schedules, and its ``summary.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...config import ComputeHparams, DataHparams, TrainHparams
from ...dst.gmp import GradualSpec, train_gradual
from ...io.atomic import atomic_write_json
from ...io.checkpoint import read_meta
from ...models.spec import ArchSpec
from ...train.engine import TrainResult
from ...train.run import RunFiles
from .common import run_summary

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
    atomic_write_json(summary_json, {"method": "gradual", **run_summary(result, result.model, arch)})
    return result


def gradual_spec(sparsity: float, options: Mapping[str, Any]) -> GradualSpec:
    """The :class:`GradualSpec` of one ``gradual`` run from a ``dst`` experiment's options."""
    g = options["gradual"]
    layers = options.get("sparse_layers", "paper")
    return GradualSpec(
        target=float(sparsity), target_fc=options.get("sparsity_fc"),
        sparse_layers=layers if isinstance(layers, str) else tuple(layers),
        start=int(g.get("start", 0)), freq=int(g.get("freq", 2)), iterations=int(g.get("iterations", 20)),
        schedule=g.get("schedule", "cubic"), by=g.get("by", "fraction"), output_layer=g.get("output_layer"),
        output_cap=float(g.get("output_cap", 0.9)),
    )  # fmt: skip
