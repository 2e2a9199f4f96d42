"""Rule ledger_report: the ledger CSV, Kendall tau table and figure (sparselab.studies.ledger.report)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.ledger.report import write_report  # noqa: E402

smk = snakemake  # noqa: F821
out = smk.output
with snakemake_job(smk):
    write_report(
        smk.input.parts,
        smk.params.options["measures"],
        smk.params.options["title"],
        ledger_csv=out.ledger,
        kendall_csv=out.kendall,
        kendall_md=out.kendall_md,
        figure_pdf=out.figure_pdf,
        figure_png=out.figure_png,
    )
