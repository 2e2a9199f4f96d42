"""Rule reproduction_table: published numbers vs the run's regenerated records (sparselab.reproduction.compare)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.reproduction.compare import write_table  # noqa: E402
from sparselab.reproduction.ledger import read_ledger  # noqa: E402

smk = snakemake  # noqa: F821
p = smk.params.compare
with snakemake_job(smk):
    write_table(
        read_ledger([f"{smk.scriptdir}/../{name}" for name in smk.params.published]),
        p["configs"],
        p["k"],
        p["records"],
        p["summaries"],
        table_csv=smk.output.table,
        table_md=smk.output.table_md,
    )
