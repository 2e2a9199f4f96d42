"""Rule transfer_full: full finetuning of an upstream, backbone masks kept (sparselab.studies.transfer.full)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.full import run_full  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_full(
        RunFiles.from_snakemake(smk),
        smk.output.summary,
        upstream=smk.input.upstream,
        data=DataHparams.from_dict(smk.params.data),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        lr=smk.params.lr,
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
