"""Rule dst_gradual: gradual pruning of a dense checkpoint (sparselab.studies.dst.gradual)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.dst.gradual import gradual_spec, run_gradual_pruning  # noqa: E402
from sparselab.studies.dst.options import DstOptions  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_gradual_pruning(
        RunFiles.from_snakemake(smk),
        smk.output.summary,
        dense=smk.input.dense,
        data=DataHparams.from_dict(smk.params.data),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        spec=gradual_spec(float(smk.wildcards.sparsity), DstOptions.from_dict(smk.params.options)),
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
