"""Rule pathnorm_subsets_figure: Figure 5, growing training subsets (sparselab.studies.pathnorm.artefacts)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.pathnorm.artefacts import write_subsets_figure  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_subsets_figure(
        smk.params.runs,
        smk.output.csv,
        smk.output.pdf,
        smk.output.png,
        title=smk.params.title,
        gap=smk.params.gap,
    )
