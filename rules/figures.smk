# Tables and figures of the studies, collected into `snakemake --report`.


rule oneshot_records:
    input:
        evaluations=oneshot_evaluations,
    output:
        "results/oneshot/summary/records.csv",
    params:
        code=code_version("records.py"),
    log:
        "logs/oneshot/records.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/records.py"


rule oneshot_table:
    input:
        records="results/oneshot/summary/records.csv",
    output:
        csv=report(
            "results/oneshot/summary/accuracy_vs_sparsity.csv",
            caption="../report/oneshot_table.rst",
            category="One-shot pruning",
            labels={"artefact": "table (CSV)"},
        ),
        md="results/oneshot/summary/accuracy_vs_sparsity.md",
    params:
        code=code_version("accuracy_table.py"),
    log:
        "logs/oneshot/table.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/accuracy_table.py"


rule oneshot_figure:
    input:
        records="results/oneshot/summary/records.csv",
    output:
        pdf="results/oneshot/summary/accuracy_vs_sparsity.pdf",
        png=report(
            "results/oneshot/summary/accuracy_vs_sparsity.png",
            caption="../report/oneshot_figure.rst",
            category="One-shot pruning",
            labels={"artefact": "figure"},
        ),
    params:
        code=code_version("accuracy_figure.py"),
        title=CFG.oneshot_title,
    log:
        "logs/oneshot/figure.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/accuracy_figure.py"
