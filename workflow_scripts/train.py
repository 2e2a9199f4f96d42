"""Rule train_dense: train a freshly initialised model (sparselab.train.run.run_training)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, ModelHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.train.run import RunFiles, run_training  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_training(
        RunFiles.from_snakemake(smk),
        data=DataHparams.from_dict(smk.params.data),
        model=ModelHparams.from_dict(smk.params.model),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
