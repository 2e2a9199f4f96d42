"""Rule evaluate_oneshot: evaluate one checkpoint (sparselab.metrics.checkpoint_eval)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.metrics.checkpoint_eval import evaluate_checkpoint  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    evaluate_checkpoint(
        smk.input.model,
        DataHparams.from_dict(smk.params.data),
        smk.output[0],
        compute=compute,
        labels=smk.params.labels,
        history_csv=smk.input.get("history"),
    )
