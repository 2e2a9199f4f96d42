"""Rule transfer_linear: linear heads on cached features, one per seed (sparselab.studies.transfer.linear)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.linear import run_linear  # noqa: E402
from sparselab.studies.transfer.options import LinearProtocol  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    run_linear(
        smk.input.train,
        smk.input.test,
        smk.output.summary,
        smk.output.history,
        options=LinearProtocol.from_dict(smk.params.options),
    )
