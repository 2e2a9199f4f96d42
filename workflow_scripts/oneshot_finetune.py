"""Rule prune_finetune_oneshot: prune a dense checkpoint, then finetune it with the mask enforced."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.oneshot.prune import prune_and_finetune  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    prune_and_finetune(
        smk.input.dense,
        smk.output.pruned,
        RunFiles.from_snakemake(smk),
        sparsity=float(smk.wildcards.sparsity),
        scope=smk.wildcards.pruned_scope,
        data=DataHparams.from_dict(smk.params.data),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
