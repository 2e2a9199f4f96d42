"""Rule oneshot_records: gather evaluation JSONs into one per-run CSV (sparselab.studies.oneshot.records)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.oneshot.records import write_records  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_records(smk.input.evaluations, smk.output[0])
