"""Rule srste_oneshot: train a dense checkpoint to N:M with SR-STE (the mask re-selected from the dense weights,
optionally faded in gradually)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../lib")  # noqa: F821  (this checkout's package, also in conda envs)

from sparselab.config import DataHparams, TrainHparams  # noqa: E402
from sparselab.jobs import snakemake_job  # noqa: E402
from sparselab.studies.oneshot.nm import train_srste  # noqa: E402
from sparselab.train.run import RunFiles  # noqa: E402

smk = snakemake  # noqa: F821
options = smk.params.srste
with snakemake_job(smk) as compute:
    train_srste(
        smk.input.dense,
        RunFiles.from_snakemake(smk),
        n=int(options["n"]),
        m=int(options["m"]),
        decay=float(options["decay"]),
        period=None if options["period"] is None else int(options["period"]),
        ramp=float(options.get("ramp", 0.0)),
        data=DataHparams.from_dict(smk.params.data),
        recipe=TrainHparams.from_dict(smk.params.recipe),
        seed=int(smk.wildcards.seed),
        compute=compute,
    )
