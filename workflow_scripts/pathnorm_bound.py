"""Rule pathnorm_bound: Table 2, the Theorem 3.1 constants (sparselab.studies.pathnorm.bound)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.pathnorm.bound import write_bound_table  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_bound_table(smk.params.settings, smk.output.csv, smk.output.md)
