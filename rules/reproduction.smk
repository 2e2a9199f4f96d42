# The reproduction ledger (cross-study): the published numbers of published/*.csv whose config is the
# one being run, beside that run's regenerated records (mean ± std over seeds, the difference, within
# k·std or not). On the default run (digits) the table says nothing paper-scale was run. One cheap job.

from sparselab.reproduction.plan import ReproductionPlan

REPRODUCTION = ReproductionPlan(workflow.basedir, list(getattr(workflow, "configfiles", [])), PLANS)


rule reproduction_table:
    input:
        runs=REPRODUCTION.inputs,
    output:
        table=report(
            "results/reproduction/table.csv",
            caption="../report/reproduction_table.rst",
            category="Reproduction",
            labels={"artefact": "published vs regenerated"},
        ),
        table_md="results/reproduction/table.md",
    params:
        code=code_version("reproduction_table.py"),
        compare=REPRODUCTION.params,
        published=REPRODUCTION.published,
    log:
        "logs/reproduction/table.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/reproduction_table.py"
