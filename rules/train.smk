# Dense training from scratch: one job per dataset x model x recipe x seed.


rule train_dense:
    input:
        code=code_deps("train.py"),
    output:
        model="results/train/{dataset}/{model}/{recipe}/seed{seed}/model.safetensors",
        sidecar="results/train/{dataset}/{model}/{recipe}/seed{seed}/model.json",
        metrics="results/train/{dataset}/{model}/{recipe}/seed{seed}/metrics.csv",
        hparams="results/train/{dataset}/{model}/{recipe}/seed{seed}/hparams.json",
    params:
        data=dataset_params,
        model=model_params,
        recipe=recipe_params,
        state_dir=resume_dir,
    log:
        "logs/train/{dataset}/{model}/{recipe}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{model}/{recipe}/seed{seed}.tsv"
    threads: 1
    priority: 20
    resources:
        runtime=train_runtime,
        mem_mb=train_mem_mb,
        gpu=train_gpus,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train.py"
