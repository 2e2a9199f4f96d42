"""Rule transfer_acdc: AC/DC from scratch on the upstream data (sparselab.studies.transfer.acdc)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, ModelHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.acdc import run_acdc  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_acdc(
        RunFiles.from_snakemake(smk),
        smk.output.summary,
        data=DataHparams.from_dict(smk.params.data),
        model=ModelHparams.from_dict(smk.params.model),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        sparsity=float(smk.wildcards.sparsity),
        sparse_layers=smk.params.layers,
        seed=int(smk.params.seed),
        compute=compute,
    )
