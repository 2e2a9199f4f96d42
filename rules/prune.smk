# One-shot magnitude pruning of the dense model, then finetuning with the mask enforced. One job
# per run: pruning takes milliseconds, so its own job would cost more to start than to run.


rule prune_finetune_oneshot:
    input:
        dense=dense_checkpoint,
    output:
        pruned="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/pruned.safetensors",
        pruned_sidecar="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/pruned.json",
        model="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/model.safetensors",
        sidecar="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/model.json",
        metrics="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/metrics.csv",
        hparams="results/oneshot/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}/hparams.json",
    params:
        code=code_version("finetune.py"),
        data=dataset_params,
        recipe=finetune_recipe_params,
        state_dir=resume_dir,
    log:
        "logs/oneshot/finetune/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}.log",
    benchmark:
        "benchmarks/oneshot/finetune/{dataset}/{model}/{pruned_scope}/s{sparsity}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    priority: 10
    resources:
        runtime=finetune_runtime,
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/finetune.py"
