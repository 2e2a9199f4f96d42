"""Growing training subsets in the path-norm study (Figure 5): dense training on nested seeded
fractions of the data, logging :class:`.analysis.PathNormAnalysis` per epoch."""

from __future__ import annotations

import dataclasses

from ...config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ...data.splits import dataset_len
from ...train.engine import TrainResult
from ...train.run import RunFiles, train_and_save
from ..base.setup import RunSetup
from .analysis import PathNormAnalysis
from .options import AnalysisSpec


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
    run = RunSetup.fresh(data, model, seed)
    splits = run.splits
    hparams = run.hparams(
        "dense_subset",
        recipe,
        subset={"fraction": fraction, "train_samples": dataset_len(splits.train)},
        analysis=dataclasses.asdict(analysis),
    )
    return train_and_save(
        files,
        run,
        run.build(),
        None,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=False,
        callbacks=(PathNormAnalysis(analysis, splits.info.input_shape),),
        parents=(),
    )
