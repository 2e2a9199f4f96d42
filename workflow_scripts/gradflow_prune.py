"""Rule gradflow_prune: the prune+train rounds of one run (sparselab.studies.gradflow.prune)."""

import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, ModelHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.gradflow.prune import PruneSpec, RoundFiles, run_prune_rounds  # noqa: E402

smk = snakemake  # noqa: F821
out = smk.output
with snakemake_job(smk) as compute:
    run_prune_rounds(
        RoundFiles(Path(out.model), Path(out.rounds), Path(out.hparams), Path(smk.params.state_dir)),
        data=DataHparams.from_dict(smk.params.data),
        model=ModelHparams.from_dict(smk.params.model),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        prune=PruneSpec.from_dict(smk.params.prune, path="params.prune"),
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
