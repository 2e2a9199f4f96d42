"""Rule ledger_measure: one study's final checkpoints measured (sparselab.studies.ledger.measure)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.ledger.measure import measure_part  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk) as compute:
    measure_part(smk.params.rows, smk.params.data, smk.params.options, smk.output[0], compute=compute)
