"""Rule gradflow_records: one row per finished run and per dense baseline (sparselab.studies.gradflow.records)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.gradflow.records import write_records  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_records(smk.params.runs, smk.params.dense, smk.output.records)
