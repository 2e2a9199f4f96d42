# Evaluation of every checkpoint of a study: accuracy, loss, sparsity, parameter counts.


rule evaluate_oneshot:
    input:
        unpack(oneshot_eval_inputs),
    output:
        "results/oneshot/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}/eval.json",
    params:
        code=code_version("evaluate.py"),
        data=dataset_params,
        labels=oneshot_labels,
    log:
        "logs/oneshot/evaluate/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}.log",
    threads: 1
    resources:
        runtime=eval_runtime,
        mem_mb=train_mem_mb,
        gpu=EVAL_GPUS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/evaluate.py"
