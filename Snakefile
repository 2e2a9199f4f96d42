# sparselab: one reproducible pipeline for research on sparse neural networks.
# Table of contents only: shared helpers in rules/common.smk, dense training in rules/train.smk,
# one rules file per study (its paths and params come from sparselab.studies.<study>.plan), and the
# cross-study reproduction ledger in rules/reproduction.smk.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless a study config is given: `--configfile configs/x.yaml` replaces it
# rather than merging into it, so paper-scale configs are complete on their own.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/train.smk"
include: "rules/oneshot.smk"
include: "rules/pathnorm.smk"
include: "rules/gradflow.smk"
include: "rules/dst.smk"
include: "rules/transfer.smk"
include: "rules/ledger.smk"
include: "rules/reproduction.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        REPRODUCTION.targets(),
