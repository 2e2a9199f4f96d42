"""Rule oneshot_figure: accuracy vs sparsity figure (sparselab.studies.oneshot.figure)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.oneshot.figure import write_accuracy_figure  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    write_accuracy_figure(smk.input.records, smk.output.pdf, smk.output.png, title=smk.params.title)
