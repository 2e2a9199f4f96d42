"""Rule transfer_report: the transfer tables and the accuracy-vs-sparsity figure (sparselab.studies.transfer.report)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.report import write_report  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_report(smk.input.records, dict(smk.output.items()), smk.params.title, smk.input.upstreams)
