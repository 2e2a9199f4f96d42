"""Rule prune_finetune_oneshot_nm: prune a dense checkpoint once to N:M, then finetune it with the mask enforced."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.oneshot.nm import prune_and_finetune_nm  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    prune_and_finetune_nm(
        smk.input.dense,
        smk.output.pruned,
        RunFiles.from_snakemake(smk),
        n=int(smk.params.nm["n"]),
        m=int(smk.params.nm["m"]),
        data=DataHparams.from_dict(smk.params.data),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
