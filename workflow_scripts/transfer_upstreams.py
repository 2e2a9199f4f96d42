"""Rule transfer_upstreams: parameters, FLOPs and theoretical speed-up of every upstream (sparselab.studies.transfer.upstreams)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.upstreams import write_upstreams  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_upstreams(smk.params.upstreams, smk.output.upstreams)
