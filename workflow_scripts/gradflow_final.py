"""Rule gradflow_final: final training of a pruned model and its summary (sparselab.studies.gradflow.final)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.gradflow.final import run_final_training  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_final_training(
        RunFiles.from_snakemake(smk),
        smk.output.summary,
        pruned=smk.input.pruned,
        data=DataHparams.from_dict(smk.params.data),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
