"""Rule dst_records: one row per run and one per sparse layer of each run (sparselab.studies.dst.records)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.dst.records import write_records  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_records(smk.params.runs, smk.output.records, smk.output.densities)
