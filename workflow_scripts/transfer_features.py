"""Rule transfer_features: one pass of an upstream over a downstream dataset, features cached (sparselab.studies.transfer.features)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.features import run_feature_extraction  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    run_feature_extraction(
        smk.input.upstream,
        DataHparams.from_dict(smk.params.data),
        smk.output.train,
        smk.output.test,
        compute=compute,
    )
