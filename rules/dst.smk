# Dynamic sparse training (Mostafa & Wang, ICML 2019): one job per dataset x model x method x
# sparsity x seed trained from scratch, gradual pruning of the dense networks of rules/train.smk,
# then the records, the accuracy table and the two figures.

DST = PLANS["dst"]


rule dst_train:
    output:
        model="results/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}/model.safetensors",
        sidecar="results/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}/model.json",
        metrics="results/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}/metrics.csv",
        hparams="results/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}/hparams.json",
        summary="results/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}/summary.json",
    wildcard_constraints:
        method="dsr|set|deepr|rigl|snfs|static|tied|thin_dense|dense",
    params:
        code=code_version("dst_train.py"),
        data=dataset_params,
        model=model_params,
        recipe=DST.method_recipe,
        options=DST.options,
        state_dir=resume_dir,
    log:
        "logs/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}.log",
    benchmark:
        "benchmarks/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    resources:
        runtime=runtime(DST.method_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/dst_train.py"


rule dst_gradual:
    input:
        dense=DST.dense_checkpoint,
    output:
        model="results/dst/{dataset}/{model}/gradual/s{sparsity}/seed{seed}/model.safetensors",
        sidecar="results/dst/{dataset}/{model}/gradual/s{sparsity}/seed{seed}/model.json",
        metrics="results/dst/{dataset}/{model}/gradual/s{sparsity}/seed{seed}/metrics.csv",
        hparams="results/dst/{dataset}/{model}/gradual/s{sparsity}/seed{seed}/hparams.json",
        summary="results/dst/{dataset}/{model}/gradual/s{sparsity}/seed{seed}/summary.json",
    params:
        code=code_version("dst_gradual.py"),
        data=dataset_params,
        recipe=DST.gradual_recipe,
        options=DST.options,
        state_dir=resume_dir,
    log:
        "logs/dst/{dataset}/{model}/gradual/s{sparsity}/seed{seed}.log",
    benchmark:
        "benchmarks/dst/{dataset}/{model}/gradual/s{sparsity}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    resources:
        runtime=runtime(DST.gradual_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/dst_gradual.py"


rule dst_records:
    input:
        summaries=DST.summary_paths,
    output:
        records="results/dst/summary/records.csv",
        densities="results/dst/summary/layer_density.csv",
    params:
        code=code_version("dst_records.py"),
        runs=DST.summaries,
    log:
        "logs/dst/records.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/dst_records.py"


rule dst_report:
    input:
        records="results/dst/summary/records.csv",
        densities="results/dst/summary/layer_density.csv",
    output:
        table=report(
            "results/dst/summary/table_accuracy.csv",
            caption="../report/dst_table.rst",
            category="Dynamic sparse training",
            labels={"artefact": "accuracy per method and sparsity"},
        ),
        table_md="results/dst/summary/table_accuracy.md",
        figure_pdf="results/dst/summary/figure_accuracy_vs_parameters.pdf",
        figure_png=report(
            "results/dst/summary/figure_accuracy_vs_parameters.png",
            caption="../report/dst_figure.rst",
            category="Dynamic sparse training",
            labels={"artefact": "accuracy vs parameters"},
        ),
        density_pdf="results/dst/summary/figure_layer_density.pdf",
        density_png=report(
            "results/dst/summary/figure_layer_density.png",
            caption="../report/dst_density.rst",
            category="Dynamic sparse training",
            labels={"artefact": "per-layer density"},
        ),
    params:
        code=code_version("dst_report.py"),
        title=DST.title,
    log:
        "logs/dst/report.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/dst_report.py"
