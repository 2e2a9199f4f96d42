"""Rule pathnorm_subset: dense training on a seeded fraction of the data (sparselab.studies.pathnorm.subsets)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, ModelHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.pathnorm.options import AnalysisSpec  # noqa: E402
from sparselab.studies.pathnorm.subsets import run_subset  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_subset(
        RunFiles.from_snakemake(smk),
        data=DataHparams.from_dict(smk.params.data),
        model=ModelHparams.from_dict(smk.params.model),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        fraction=float(smk.wildcards.fraction),
        seed=int(smk.wildcards.seed),
        analysis=AnalysisSpec.from_dict(smk.params.analysis),
        compute=compute,
    )
