"""Rule gradflow_report: the final table and the per-round figures (sparselab.studies.gradflow.report)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.gradflow.report import KEYS, write_report  # noqa: E402

smk = snakemake  # noqa: F821
out = smk.output
with snakemake_job(smk):
    write_report(
        smk.input.records,
        {tuple(keys[k] for k in KEYS): path for keys, path in smk.params.rounds},
        table_csv=out.table,
        table_md=out.table_md,
        rounds_pdf=out.rounds_pdf,
        rounds_png=out.rounds_png,
        kendall_pdf=out.kendall_pdf,
        kendall_png=out.kendall_png,
        title=smk.params.title,
    )
