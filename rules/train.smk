# Dense training from scratch: one job per dataset x model x recipe x seed.


rule train_dense:
    output:
        model="results/train/{dataset}/{model}/{recipe}/seed{seed}/model.safetensors",
        sidecar="results/train/{dataset}/{model}/{recipe}/seed{seed}/model.json",
        metrics="results/train/{dataset}/{model}/{recipe}/seed{seed}/metrics.csv",
        hparams="results/train/{dataset}/{model}/{recipe}/seed{seed}/hparams.json",
    params:
        code=code_version("train.py"),
        data=dataset_params,
        model=model_params,
        recipe=recipe_params,
        state_dir=resume_dir,
    log:
        "logs/train/{dataset}/{model}/{recipe}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{model}/{recipe}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    priority: 20
    resources:
        runtime=runtime(recipe_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train.py"
