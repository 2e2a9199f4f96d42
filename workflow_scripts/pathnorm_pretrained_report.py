"""Rule pathnorm_pretrained_report: Tables 3, 5 and Figure 3 (sparselab.studies.pathnorm.artefacts)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.pathnorm.artefacts import write_pretrained_report  # noqa: E402

smk = snakemake  # noqa: F821
out = smk.output
with snakemake_job(smk):
    write_pretrained_report(
        smk.input.summaries,
        smk.input.margins,
        table3=(out.table3, out.table3_md),
        table5=(out.table5, out.table5_md),
        figure=(out.pdf, out.png),
        title=smk.params.title,
    )
