"""Growing training subsets in the path-norm study (Figure 5): dense training on nested seeded
fractions of the data, logging :class:`.analysis.PathNormAnalysis` per epoch."""

from __future__ import annotations

import dataclasses


from ...config import ComputeHparams, DataHparams, ModelHparams, SeedHparams, TrainHparams
from ...data import build_splits
from ...models.spec import ArchSpec
from ...train.engine import TrainResult
from ...train.run import RunFiles, build_seeded, train_and_save
from .analysis import AnalysisSpec, PathNormAnalysis, run_record


def run_subset(
    files: RunFiles,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    fraction: float,
    seed: int,
    analysis: AnalysisSpec,
    compute: ComputeHparams,
) -> TrainResult:
    """Dense training on a seeded ``fraction`` of the train split (nested across fractions for a
    seed: the subsets are prefixes of one seeded permutation), with the per-epoch analysis."""
    data = dataclasses.replace(data, subset_fraction=fraction, subset_seed=seed)
    seeds = SeedHparams.for_replicate(seed)
    splits = build_splits(data)
    spec = ArchSpec(model.arch, splits.info.num_classes, splits.info.input_shape, dict(model.kwargs))
    hparams = run_record("dense_subset", seed, seeds, data, model.to_dict(), recipe,
                      {"subset": {"fraction": fraction, "train_samples": len(splits.train)},
                       "analysis": dataclasses.asdict(analysis)})  # fmt: skip
    return train_and_save(
        files, build_seeded(spec, seeds.init), spec, None, hparams, data=data, splits=splits, recipe=recipe,
        seeds=seeds, compute=compute, eval_before=False, callbacks=(PathNormAnalysis(analysis, splits.info.input_shape),),
    )  # fmt: skip
