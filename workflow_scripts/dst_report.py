"""Rule dst_report: accuracy table, accuracy vs parameters and per-layer density (sparselab.studies.dst.report)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.dst.report import write_report  # noqa: E402

smk = snakemake  # noqa: F821
out = smk.output
with snakemake_job(smk):
    write_report(
        smk.input.records,
        smk.input.densities,
        table_csv=out.table,
        table_md=out.table_md,
        figure_pdf=out.figure_pdf,
        figure_png=out.figure_png,
        density_pdf=out.density_pdf,
        density_png=out.density_png,
        title=smk.params.title,
    )
