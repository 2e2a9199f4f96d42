"""Rule transfer_records: one row per (upstream, mode, downstream dataset, seed) (sparselab.studies.transfer.records)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.records import records_from_summaries, write_records  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_records(records_from_summaries(smk.params.runs), smk.output.records)
