"""Rule pathnorm_pretrained: path-norms and train margins of one trained model
(sparselab.studies.pathnorm.pretrained.analyse_pretrained)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.pathnorm.options import PretrainedSpec  # noqa: E402
from sparselab.studies.pathnorm.pretrained import analyse_pretrained  # noqa: E402

smk = snakemake  # noqa: F821
opts = PretrainedSpec.from_dict(smk.params.options, path="params.options")
with snakemake_job(smk) as compute:
    analyse_pretrained(
        smk.output.summary,
        smk.output.margins,
        name=smk.wildcards.name,
        data=DataHparams.from_dict(smk.params.data),
        checkpoint=smk.input.get("checkpoint"),
        weights=opts.weights,
        hub_dir=opts.hub_dir,
        qs=opts.qs,
        conventions=opts.conventions,
        margin_samples=opts.margin_samples,
        batch_size=opts.batch_size,
        compute=compute,
    )
