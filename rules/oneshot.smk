# One-shot magnitude pruning (the embedded default's first study): the dense model of rules/train.smk
# pruned once per scope (layerwise, global) x sparsity and finetuned in one job; with an experiment's
# nm block also N:M runs (scope nm_oneshot: pruned once to N:M and finetuned; nm_srste: SR-STE from
# the dense model, at sparsity 1 - N/M); every checkpoint evaluated (the dense one as scope "dense"),
# then records, the tables and the figure.

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


rule prune_finetune_oneshot_nm:
    input:
        dense=ONESHOT.dense_checkpoint,
    output:
        pruned="results/oneshot/{dataset}/{model}/nm_oneshot/s{sparsity}/seed{seed}/pruned.safetensors",
        pruned_sidecar="results/oneshot/{dataset}/{model}/nm_oneshot/s{sparsity}/seed{seed}/pruned.json",
        model="results/oneshot/{dataset}/{model}/nm_oneshot/s{sparsity}/seed{seed}/model.safetensors",
        sidecar="results/oneshot/{dataset}/{model}/nm_oneshot/s{sparsity}/seed{seed}/model.json",
        metrics="results/oneshot/{dataset}/{model}/nm_oneshot/s{sparsity}/seed{seed}/metrics.csv",
        hparams="results/oneshot/{dataset}/{model}/nm_oneshot/s{sparsity}/seed{seed}/hparams.json",
    params:
        code=code_version("oneshot_nm_finetune.py"),
        data=dataset_params,
        recipe=ONESHOT.finetune_recipe,
        nm=ONESHOT.nm_pattern,
        state_dir=resume_dir,
    log:
        "logs/oneshot/finetune/{dataset}/{model}/nm_oneshot/s{sparsity}/seed{seed}.log",
    benchmark:
        "benchmarks/oneshot/finetune/{dataset}/{model}/nm_oneshot/s{sparsity}/seed{seed}.tsv"
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
        "../workflow_scripts/oneshot_nm_finetune.py"


rule srste_oneshot:
    input:
        dense=ONESHOT.dense_checkpoint,
    output:
        model="results/oneshot/{dataset}/{model}/nm_srste/s{sparsity}/seed{seed}/model.safetensors",
        sidecar="results/oneshot/{dataset}/{model}/nm_srste/s{sparsity}/seed{seed}/model.json",
        metrics="results/oneshot/{dataset}/{model}/nm_srste/s{sparsity}/seed{seed}/metrics.csv",
        hparams="results/oneshot/{dataset}/{model}/nm_srste/s{sparsity}/seed{seed}/hparams.json",
    params:
        code=code_version("oneshot_srste.py"),
        data=dataset_params,
        recipe=ONESHOT.srste_recipe,
        srste=ONESHOT.srste_options,
        state_dir=resume_dir,
    log:
        "logs/oneshot/srste/{dataset}/{model}/s{sparsity}/seed{seed}.log",
    benchmark:
        "benchmarks/oneshot/srste/{dataset}/{model}/s{sparsity}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    priority: 10
    resources:
        runtime=runtime(ONESHOT.srste_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/oneshot_srste.py"


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


rule oneshot_nm_table:
    input:
        records="results/oneshot/summary/records.csv",
    output:
        csv=report(
            "results/oneshot/summary/nm_vs_unstructured.csv",
            caption="../report/oneshot_nm_table.rst",
            category="One-shot pruning",
            labels={"artefact": "N:M table (CSV)"},
        ),
        md="results/oneshot/summary/nm_vs_unstructured.md",
    params:
        code=code_version("oneshot_nm_table.py"),
    log:
        "logs/oneshot/nm_table.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/oneshot_nm_table.py"


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
