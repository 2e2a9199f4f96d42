# Gradient-flow structured pruning (Lubana & Dick, ICLR 2021): per model x dataset x measure x
# target x seed, one job for the prune+train rounds and one for the final training; then the
# records (dense baselines from rules/train.smk included), the table and the two figures.

GRADFLOW = PLANS["gradflow"]


rule gradflow_prune:
    output:
        model="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/pruned.safetensors",
        sidecar="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/pruned.json",
        rounds="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/rounds.csv",
        hparams="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/prune_hparams.json",
    params:
        code=code_version("gradflow_prune.py"),
        data=dataset_params,
        model=model_params,
        recipe=GRADFLOW.round_recipe,
        prune=GRADFLOW.prune_params,
        state_dir=resume_dir,
    log:
        "logs/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/prune.log",
    benchmark:
        "benchmarks/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/prune.tsv"
    threads: TRAIN_THREADS
    priority: 10
    resources:
        runtime=runtime(GRADFLOW.prune_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/gradflow_prune.py"


rule gradflow_final:
    input:
        pruned="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/pruned.safetensors",
    output:
        model="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/final/model.safetensors",
        sidecar="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/final/model.json",
        metrics="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/final/metrics.csv",
        hparams="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/final/hparams.json",
        summary="results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/final/summary.json",
    params:
        code=code_version("gradflow_final.py"),
        data=dataset_params,
        recipe=GRADFLOW.final_recipe,
        state_dir=resume_dir,
    log:
        "logs/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/final.log",
    benchmark:
        "benchmarks/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}/final.tsv"
    threads: TRAIN_THREADS
    resources:
        runtime=runtime(GRADFLOW.final_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/gradflow_final.py"


rule gradflow_records:
    input:
        summaries=GRADFLOW.summary_paths,
        dense=GRADFLOW.dense_paths,
    output:
        records="results/gradflow/summary/records.csv",
    params:
        code=code_version("gradflow_records.py"),
        runs=GRADFLOW.summaries,
        dense=GRADFLOW.dense,
    log:
        "logs/gradflow/records.log",
    localrule: True
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/gradflow_records.py"


rule gradflow_report:
    input:
        records="results/gradflow/summary/records.csv",
        rounds=GRADFLOW.round_paths,
    output:
        table=report(
            "results/gradflow/summary/table_final.csv",
            caption="../report/gradflow_table.rst",
            category="Gradient-flow pruning",
            labels={"artefact": "final accuracy, FLOPs, parameters"},
        ),
        table_md="results/gradflow/summary/table_final.md",
        rounds_pdf="results/gradflow/summary/figure_rounds.pdf",
        rounds_png=report(
            "results/gradflow/summary/figure_rounds.png",
            caption="../report/gradflow_rounds.rst",
            category="Gradient-flow pruning",
            labels={"artefact": "accuracy per round"},
        ),
        kendall_pdf="results/gradflow/summary/figure_kendall.pdf",
        kendall_png=report(
            "results/gradflow/summary/figure_kendall.png",
            caption="../report/gradflow_kendall.rst",
            category="Gradient-flow pruning",
            labels={"artefact": "Kendall tau to magnitude"},
        ),
    params:
        code=code_version("gradflow_report.py"),
        rounds=GRADFLOW.rounds,
        title=GRADFLOW.title,
    log:
        "logs/gradflow/report.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/gradflow_report.py"
