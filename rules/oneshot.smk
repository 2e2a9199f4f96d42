# One-shot magnitude pruning (the embedded default's first study): the dense model of rules/train.smk
# pruned once per scope (layerwise, global) x sparsity and finetuned in one job, every checkpoint
# evaluated (the dense one as scope "dense"), then records, the table and the figure.

ONESHOT = PLANS["oneshot"]


rule prune_finetune_oneshot:
    input:
        dense=ONESHOT.dense_checkpoint,
    output:
        pruned="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/pruned.safetensors",
        pruned_sidecar="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/pruned.json",
        model="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/model.safetensors",
        sidecar="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/model.json",
        metrics="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/metrics.csv",
        hparams="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/hparams.json",
    params:
        code=code_version("oneshot_finetune.py"),
        data=dataset_params,
        recipe=ONESHOT.finetune_recipe,
        state_dir=resume_dir,
    log:
        "logs/oneshot/finetune/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}.log",
    benchmark:
        "benchmarks/oneshot/finetune/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    priority: 10
    resources:
        runtime=runtime(ONESHOT.finetune_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/oneshot_finetune.py"


rule evaluate_oneshot:
    input:
        unpack(ONESHOT.eval_inputs),
    output:
        "results/oneshot/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}/eval.json",
    params:
        code=code_version("oneshot_evaluate.py"),
        data=dataset_params,
        labels=ONESHOT.labels,
    log:
        "logs/oneshot/evaluate/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}.log",
    threads: 1
    resources:
        runtime=runtime(ONE_EPOCH),
        mem_mb=train_mem_mb,
        gpu=EVAL_GPUS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/oneshot_evaluate.py"


rule oneshot_records:
    input:
        evaluations=ONESHOT.evaluations,
    output:
        "results/oneshot/summary/records.csv",
    params:
        code=code_version("oneshot_records.py"),
    log:
        "logs/oneshot/records.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/oneshot_records.py"


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
        code=code_version("oneshot_table.py"),
    log:
        "logs/oneshot/table.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/oneshot_table.py"


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
        code=code_version("oneshot_figure.py"),
        title=ONESHOT.title,
    log:
        "logs/oneshot/figure.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/oneshot_figure.py"
