"""Rule dst_train: one dynamic sparse (or static, tied, thin/full dense) run from scratch (sparselab.studies.dst.sparse)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, ModelHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.dst.options import DstOptions  # noqa: E402
from sparselab.studies.dst.sparse import run_configured  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_configured(
        RunFiles.from_snakemake(smk),
        smk.output.summary,
        method=smk.wildcards.method,
        sparsity=float(smk.wildcards.sparsity),
        options=DstOptions.from_dict(smk.params.options),
        data=DataHparams.from_dict(smk.params.data),
        model=ModelHparams.from_dict(smk.params.model),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
