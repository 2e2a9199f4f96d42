# Sparse transfer (Iofinova et al., CVPR 2022): upstreams (GMP of the dense model, AC/DC and RigL
# from scratch, imported checkpoints), features cached once per upstream x downstream dataset, linear
# heads on them, full finetuning with the backbone masks kept, the from-scratch baseline, then the
# records, each upstream's parameters and FLOPs, the tables and the accuracy-vs-sparsity figure.
# Dense upstreams come from rules/train.smk.

TRANSFER = PLANS["transfer"]


rule transfer_gmp:
    input:
        dense=TRANSFER.dense_checkpoint,
    output:
        model="results/transfer/{updataset}/{model}/upstream/gmp/s{sparsity}/model.safetensors",
        sidecar="results/transfer/{updataset}/{model}/upstream/gmp/s{sparsity}/model.json",
        metrics="results/transfer/{updataset}/{model}/upstream/gmp/s{sparsity}/metrics.csv",
        hparams="results/transfer/{updataset}/{model}/upstream/gmp/s{sparsity}/hparams.json",
        summary="results/transfer/{updataset}/{model}/upstream/gmp/s{sparsity}/summary.json",
    params:
        code=code_version("transfer_gmp.py"),
        data=TRANSFER.upstream_data,
        recipe=TRANSFER.part_recipe("gmp"),
        options=TRANSFER.gmp_options,
        layers=TRANSFER.sparse_layers,
        seed=TRANSFER.upstream_seed,
        state_dir=resume_dir,
    log:
        "logs/transfer/{updataset}/{model}/upstream/gmp/s{sparsity}.log",
    benchmark:
        "benchmarks/transfer/{updataset}/{model}/upstream/gmp/s{sparsity}.tsv"
    threads: TRAIN_THREADS
    priority: 10
    resources:
        runtime=runtime(TRANSFER.part_epochs("gmp"), TRANSFER.part_dataset("gmp")),
        mem_mb=TRANSFER.mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_gmp.py"


rule transfer_acdc:
    output:
        model="results/transfer/{updataset}/{model}/upstream/acdc/s{sparsity}/model.safetensors",
        sidecar="results/transfer/{updataset}/{model}/upstream/acdc/s{sparsity}/model.json",
        metrics="results/transfer/{updataset}/{model}/upstream/acdc/s{sparsity}/metrics.csv",
        hparams="results/transfer/{updataset}/{model}/upstream/acdc/s{sparsity}/hparams.json",
        summary="results/transfer/{updataset}/{model}/upstream/acdc/s{sparsity}/summary.json",
    params:
        code=code_version("transfer_acdc.py"),
        data=TRANSFER.upstream_data,
        model=model_params,
        recipe=TRANSFER.part_recipe("acdc"),
        layers=TRANSFER.sparse_layers,
        seed=TRANSFER.upstream_seed,
        state_dir=resume_dir,
    log:
        "logs/transfer/{updataset}/{model}/upstream/acdc/s{sparsity}.log",
    benchmark:
        "benchmarks/transfer/{updataset}/{model}/upstream/acdc/s{sparsity}.tsv"
    threads: TRAIN_THREADS
    priority: 10
    resources:
        runtime=runtime(TRANSFER.part_epochs("acdc"), TRANSFER.part_dataset("acdc")),
        mem_mb=TRANSFER.mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_acdc.py"


rule transfer_rigl:
    output:
        model="results/transfer/{updataset}/{model}/upstream/rigl/s{sparsity}/model.safetensors",
        sidecar="results/transfer/{updataset}/{model}/upstream/rigl/s{sparsity}/model.json",
        metrics="results/transfer/{updataset}/{model}/upstream/rigl/s{sparsity}/metrics.csv",
        hparams="results/transfer/{updataset}/{model}/upstream/rigl/s{sparsity}/hparams.json",
        summary="results/transfer/{updataset}/{model}/upstream/rigl/s{sparsity}/summary.json",
    params:
        code=code_version("transfer_rigl.py"),
        data=TRANSFER.upstream_data,
        model=model_params,
        recipe=TRANSFER.part_recipe("rigl"),
        options=TRANSFER.rigl_options,
        layers=TRANSFER.sparse_layers,
        seed=TRANSFER.upstream_seed,
        state_dir=resume_dir,
    log:
        "logs/transfer/{updataset}/{model}/upstream/rigl/s{sparsity}.log",
    benchmark:
        "benchmarks/transfer/{updataset}/{model}/upstream/rigl/s{sparsity}.tsv"
    threads: TRAIN_THREADS
    priority: 10
    resources:
        runtime=runtime(TRANSFER.part_epochs("rigl"), TRANSFER.part_dataset("rigl")),
        mem_mb=TRANSFER.mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_rigl.py"


rule transfer_import:
    output:
        model="results/transfer/{updataset}/{model}/upstream/imported/{upstream}/s{sparsity}/model.safetensors",
        sidecar="results/transfer/{updataset}/{model}/upstream/imported/{upstream}/s{sparsity}/model.json",
        report="results/transfer/{updataset}/{model}/upstream/imported/{upstream}/s{sparsity}/import.json",
    params:
        code=code_version("transfer_import.py"),
        # the external file is checked when the workflow starts (common.smk), not declared as an
        # input, so `snakemake -n` plans a paper-scale study before its checkpoints are fetched
        source=TRANSFER.import_source,
        kind=TRANSFER.import_kind,
        num_classes=TRANSFER.num_classes,
        model=model_params,
    log:
        "logs/transfer/{updataset}/{model}/upstream/imported/{upstream}/s{sparsity}.log",
    benchmark:
        "benchmarks/transfer/{updataset}/{model}/upstream/imported/{upstream}/s{sparsity}.tsv"
    threads: 1
    resources:
        runtime=lambda wildcards, attempt: 10 * attempt,  # a format conversion: minutes
        mem_mb=TRANSFER.mem_mb,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_import.py"


rule transfer_features:
    input:
        upstream=TRANSFER.upstream_checkpoint,
    output:
        train="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/features/{dataset}/train.safetensors",
        train_meta="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/features/{dataset}/train.json",
        test="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/features/{dataset}/test.safetensors",
        test_meta="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/features/{dataset}/test.json",
    params:
        code=code_version("transfer_features.py"),
        data=TRANSFER.feature_data,
    log:
        "logs/transfer/{updataset}/{model}/{upstream}/s{sparsity}/features/{dataset}.log",
    benchmark:
        "benchmarks/transfer/{updataset}/{model}/{upstream}/s{sparsity}/features/{dataset}.tsv"
    threads: 1
    resources:
        runtime=runtime(ONE_EPOCH),
        mem_mb=TRANSFER.mem_mb,
        gpu=EVAL_GPUS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_features.py"


rule transfer_linear:
    input:
        train="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/features/{dataset}/train.safetensors",
        test="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/features/{dataset}/test.safetensors",
    output:
        summary="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/linear/{dataset}/summary.json",
        history="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/linear/{dataset}/history.csv",
    params:
        code=code_version("transfer_linear.py"),
        options=TRANSFER.linear_options,
    log:
        "logs/transfer/{updataset}/{model}/{upstream}/s{sparsity}/linear/{dataset}.log",
    benchmark:
        "benchmarks/transfer/{updataset}/{model}/{upstream}/s{sparsity}/linear/{dataset}.tsv"
    threads: 1
    resources:
        runtime=lambda wildcards, attempt: 10 * attempt,
        mem_mb=TRANSFER.mem_mb,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_linear.py"


rule transfer_full:
    input:
        upstream=TRANSFER.upstream_checkpoint,
    output:
        model="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/full/{dataset}/seed{seed}/model.safetensors",
        sidecar="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/full/{dataset}/seed{seed}/model.json",
        metrics="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/full/{dataset}/seed{seed}/metrics.csv",
        hparams="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/full/{dataset}/seed{seed}/hparams.json",
        summary="results/transfer/{updataset}/{model}/{upstream}/s{sparsity}/full/{dataset}/seed{seed}/summary.json",
    params:
        code=code_version("transfer_full.py"),
        data=TRANSFER.downstream_data,
        recipe=TRANSFER.part_recipe("full"),
        lr=TRANSFER.full_lr,
        state_dir=resume_dir,
    log:
        "logs/transfer/{updataset}/{model}/{upstream}/s{sparsity}/full/{dataset}/seed{seed}.log",
    benchmark:
        "benchmarks/transfer/{updataset}/{model}/{upstream}/s{sparsity}/full/{dataset}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    resources:
        runtime=runtime(TRANSFER.part_epochs("full")),
        mem_mb=TRANSFER.mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_full.py"


rule transfer_scratch:
    output:
        model="results/transfer/{updataset}/{model}/scratch/{dataset}/seed{seed}/model.safetensors",
        sidecar="results/transfer/{updataset}/{model}/scratch/{dataset}/seed{seed}/model.json",
        metrics="results/transfer/{updataset}/{model}/scratch/{dataset}/seed{seed}/metrics.csv",
        hparams="results/transfer/{updataset}/{model}/scratch/{dataset}/seed{seed}/hparams.json",
        summary="results/transfer/{updataset}/{model}/scratch/{dataset}/seed{seed}/summary.json",
    params:
        code=code_version("transfer_scratch.py"),
        data=dataset_params,
        model=model_params,
        recipe=TRANSFER.part_recipe("scratch"),
        state_dir=resume_dir,
    log:
        "logs/transfer/{updataset}/{model}/scratch/{dataset}/seed{seed}.log",
    benchmark:
        "benchmarks/transfer/{updataset}/{model}/scratch/{dataset}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    resources:
        runtime=runtime(TRANSFER.part_epochs("scratch")),
        mem_mb=TRANSFER.mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_scratch.py"


rule transfer_records:
    input:
        summaries=TRANSFER.summary_paths,
    output:
        records="results/transfer/summary/records.csv",
    params:
        code=code_version("transfer_records.py"),
        runs=TRANSFER.summaries,
    log:
        "logs/transfer/records.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/transfer_records.py"


rule transfer_upstreams:
    input:
        checkpoints=TRANSFER.upstream_paths,
    output:
        upstreams="results/transfer/summary/upstreams.csv",
    params:
        code=code_version("transfer_upstreams.py"),
        upstreams=TRANSFER.upstream_list,
    log:
        "logs/transfer/upstreams.log",
    threads: 1
    resources:
        runtime=lambda wildcards, attempt: 10 * attempt,  # a forward pass per checkpoint
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/transfer_upstreams.py"


rule transfer_report:
    input:
        records="results/transfer/summary/records.csv",
        upstreams="results/transfer/summary/upstreams.csv",
    output:
        table=report(
            "results/transfer/summary/table_transfer.csv",
            caption="../report/transfer_table.rst",
            category="Sparse transfer",
            labels={"artefact": "accuracy per dataset, upstream and sparsity"},
        ),
        table_md="results/transfer/summary/table_transfer.md",
        headline=report(
            "results/transfer/summary/table_headline.csv",
            caption="../report/transfer_headline.rst",
            category="Sparse transfer",
            labels={"artefact": "mean over datasets"},
        ),
        headline_md="results/transfer/summary/table_headline.md",
        upstream_table=report(
            "results/transfer/summary/table_upstreams.csv",
            caption="../report/transfer_upstreams.rst",
            category="Sparse transfer",
            labels={"artefact": "upstreams: parameters, FLOPs, theoretical speed-up"},
        ),
        upstream_table_md="results/transfer/summary/table_upstreams.md",
        figure_pdf="results/transfer/summary/figure_transfer.pdf",
        figure_png=report(
            "results/transfer/summary/figure_transfer.png",
            caption="../report/transfer_figure.rst",
            category="Sparse transfer",
            labels={"artefact": "accuracy vs sparsity"},
        ),
    params:
        code=code_version("transfer_report.py"),
        title=TRANSFER.title,
    log:
        "logs/transfer/report.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/transfer_report.py"
