# The complexity ledger: every final checkpoint the other studies list in their plans
# (ledger_checkpoints()) measured by one rule set, one job per study (a study's edit reruns only
# its part), then the ledger CSV, the Kendall tau table and the figure. Nothing is retrained.

LEDGER = PLANS["ledger"]


rule ledger_measure:
    input:
        checkpoints=LEDGER.part_checkpoints,
    output:
        "results/ledger/parts/{study}.csv",
    wildcard_constraints:
        study="[a-z]+",
    params:
        code=code_version("ledger_measure.py"),
        rows=LEDGER.part_rows,
        data=LEDGER.part_data,
        options=LEDGER.measure_options,
    log:
        "logs/ledger/measure/{study}.log",
    benchmark:
        "benchmarks/ledger/measure/{study}.tsv"
    threads: 1
    resources:
        runtime=30,
        gpu=EVAL_GPUS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/ledger_measure.py"


rule ledger_report:
    input:
        parts=LEDGER.part_paths,
    output:
        ledger=report(
            "results/ledger/checkpoints.csv",
            caption="../report/ledger_checkpoints.rst",
            category="Complexity ledger",
            labels={"artefact": "every checkpoint (CSV)"},
        ),
        kendall=report(
            "results/ledger/kendall.csv",
            caption="../report/ledger_kendall.rst",
            category="Complexity ledger",
            labels={"artefact": "Kendall tau with the gap (CSV)"},
        ),
        kendall_md="results/ledger/kendall.md",
        figure_pdf="results/ledger/figure_ledger.pdf",
        figure_png=report(
            "results/ledger/figure_ledger.png",
            caption="../report/ledger_figure.rst",
            category="Complexity ledger",
            labels={"artefact": "measures vs gap"},
        ),
    params:
        code=code_version("ledger_report.py"),
        options=LEDGER.report_options,
    log:
        "logs/ledger/report.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/ledger_report.py"
