"""Configuration: hyperparameter bundles, config validation, run grids, dataset-root checks.

Everything here imports only the standard library (plus jsonschema/yaml on demand), because the
Snakefile imports it at parse time and ``snakemake -n`` must stay fast.
"""

from .bundles import (
    ComputeHparams,
    DataHparams,
    GmpRamp,
    ModelHparams,
    OptimizerHparams,
    ScheduleHparams,
    SeedHparams,
    TrainHparams,
)
from .hparams import Hparams, HparamsError, derive_seed

__all__ = [
    "ComputeHparams",
    "DataHparams",
    "GmpRamp",
    "Hparams",
    "HparamsError",
    "ModelHparams",
    "OptimizerHparams",
    "ScheduleHparams",
    "SeedHparams",
    "TrainHparams",
    "derive_seed",
]
