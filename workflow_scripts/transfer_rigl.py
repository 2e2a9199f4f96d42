"""Rule transfer_rigl: RigL from scratch on the upstream data (sparselab.studies.transfer.rigl)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, ModelHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.rigl import run_rigl  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_rigl(
        RunFiles.from_snakemake(smk),
        smk.output.summary,
        data=DataHparams.from_dict(smk.params.data),
        model=ModelHparams.from_dict(smk.params.model),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        sparsity=float(smk.wildcards.sparsity),
        options=smk.params.options,
        sparse_layers=smk.params.layers,
        seed=int(smk.params.seed),
        compute=compute,
    )
