"""Rules pathnorm_imp_dense / pathnorm_imp_round: one IMP round (sparselab.studies.pathnorm.imp)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, ModelHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.pathnorm.imp import run_imp_dense, run_imp_round  # noqa: E402
from sparselab.studies.pathnorm.options import AnalysisSpec  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
imp = smk.params.imp
common = dict(
    data=DataHparams.from_dict(smk.params.data),
    recipe=TrainHparams.from_dict(smk.params.recipe),
    seed=int(smk.wildcards.seed),
    analysis=AnalysisSpec.from_dict(smk.params.analysis),
)
with snakemake_job(smk) as compute:
    if int(smk.wildcards.get("round", 0)) == 0:
        run_imp_dense(
            RunFiles.from_snakemake(smk),
            smk.output.rewind,
            model=ModelHparams.from_dict(smk.params.model),
            rewind_epoch=imp["rewind_epoch"],
            compute=compute,
            **common,
        )
    else:
        run_imp_round(
            RunFiles.from_snakemake(smk),
            previous=smk.input.previous,
            rewind_state=smk.input.rewind,
            round_index=int(smk.wildcards["round"]),
            conv_fraction=imp["conv_fraction"],
            linear_fraction=imp["linear_fraction"],
            scope=imp["scope"],
            compute=compute,
            **common,
        )
