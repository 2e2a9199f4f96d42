"""Rule transfer_import: an external upstream checkpoint into our format (sparselab.transfer.imports)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.transfer.imported import run_import  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_job(smk):
    run_import(
        smk.params.source,
        smk.output.model,
        smk.output.report,
        kind=smk.params.kind,
        arch=smk.params.model["arch"],
        arch_kwargs=smk.params.model.get("kwargs", {}),
        num_classes=int(smk.params.num_classes),
    )
