"""Rule transfer_gmp: gradual magnitude pruning of the dense upstream (sparselab.studies.transfer.gmp)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.gmp import run_gmp  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_gmp(
        RunFiles.from_snakemake(smk),
        smk.output.summary,
        dense=smk.input.dense,
        data=DataHparams.from_dict(smk.params.data),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        sparsity=float(smk.wildcards.sparsity),
        options=smk.params.options,
        sparse_layers=smk.params.layers,
        seed=int(smk.params.seed),
        compute=compute,
    )
