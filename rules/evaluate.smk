# Evaluation of every checkpoint of a study: accuracy, loss, sparsity, parameter counts.


rule evaluate_oneshot:
    input:
        unpack(oneshot_eval_inputs),
        code=code_deps("evaluate.py"),
    output:
        "results/oneshot/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}/eval.json",
    params:
        data=dataset_params,
        labels=oneshot_labels,
    log:
        "logs/oneshot/evaluate/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}.log",
    threads: 1
    resources:
        runtime=eval_runtime,
        mem_mb=train_mem_mb,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/evaluate.py"
