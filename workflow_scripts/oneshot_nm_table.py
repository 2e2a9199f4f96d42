"""Rule oneshot_nm_table: dense vs unstructured vs N:M, with complexity (sparselab.studies.oneshot.report)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.oneshot.report import write_nm_table  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_nm_table(smk.input.records, smk.output.csv, smk.output.md)
