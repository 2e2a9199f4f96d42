# The path-norm study (Gonon et al., ICLR 2024): Table 2 (bound constants), Tables 3 and 5 and
# Figure 3 (trained models), Figure 4 (IMP with rewinding, one job per round), Figure 5 (growing
# training subsets). Parts absent from the config have no jobs.

PATHNORM = PLANS["pathnorm"]


rule pathnorm_bound:
    output:
        csv=report(
            "results/pathnorm/summary/table2_bound.csv",
            caption="../report/pathnorm_table2.rst",
            category="Path-norms",
            labels={"artefact": "Table 2 (bound)"},
        ),
        md="results/pathnorm/summary/table2_bound.md",
    params:
        code=code_version("pathnorm_bound.py"),
        settings=PATHNORM.bound_settings,
    log:
        "logs/pathnorm/table2_bound.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/pathnorm_bound.py"


rule pathnorm_pretrained:
    input:
        unpack(PATHNORM.pretrained_inputs),
    output:
        summary="results/pathnorm/pretrained/{dataset}/{name}/summary.json",
        margins="results/pathnorm/pretrained/{dataset}/{name}/margins.safetensors",
    params:
        code=code_version("pathnorm_pretrained.py"),
        data=dataset_params,
        options=PATHNORM.pretrained_params,
    log:
        "logs/pathnorm/pretrained/{dataset}/{name}.log",
    benchmark:
        "benchmarks/pathnorm/pretrained/{dataset}/{name}.tsv"
    threads: 1
    resources:
        runtime=runtime(ONE_EPOCH),
        mem_mb=train_mem_mb,
        gpu=EVAL_GPUS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/pathnorm_pretrained.py"


rule pathnorm_pretrained_report:
    input:
        summaries=PATHNORM.pretrained_outputs("summary.json"),
        margins=PATHNORM.pretrained_outputs("margins.safetensors"),
    output:
        table3=report(
            "results/pathnorm/summary/table3_pathnorms.csv",
            caption="../report/pathnorm_table3.rst",
            category="Path-norms",
            labels={"artefact": "Table 3 (path-norms)"},
        ),
        table3_md="results/pathnorm/summary/table3_pathnorms.md",
        table5=report(
            "results/pathnorm/summary/table5_margins.csv",
            caption="../report/pathnorm_table5.rst",
            category="Path-norms",
            labels={"artefact": "Table 5 (margins)"},
        ),
        table5_md="results/pathnorm/summary/table5_margins.md",
        pdf="results/pathnorm/summary/figure3_margins.pdf",
        png=report(
            "results/pathnorm/summary/figure3_margins.png",
            caption="../report/pathnorm_figure3.rst",
            category="Path-norms",
            labels={"artefact": "Figure 3 (margins)"},
        ),
    params:
        code=code_version("pathnorm_pretrained_report.py"),
        title=PATHNORM.title,
    log:
        "logs/pathnorm/pretrained_report.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/pathnorm_pretrained_report.py"


rule pathnorm_imp_dense:
    output:
        model="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round0/model.safetensors",
        sidecar="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round0/model.json",
        metrics="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round0/metrics.csv",
        hparams="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round0/hparams.json",
        rewind="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round0/rewind.pt",
    params:
        code=code_version("pathnorm_imp.py"),
        data=dataset_params,
        model=model_params,
        recipe=recipe_params,
        imp=PATHNORM.imp_params,
        analysis=PATHNORM.analysis_params,
        state_dir=resume_dir,
    log:
        "logs/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round0.log",
    benchmark:
        "benchmarks/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round0.tsv"
    threads: TRAIN_THREADS
    priority: 30
    resources:
        runtime=runtime(recipe_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/pathnorm_imp.py"


rule pathnorm_imp_round:
    input:
        previous=PATHNORM.imp_previous_round,
        rewind=PATHNORM.imp_rewind_state,
    output:
        model="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round{round}/model.safetensors",
        sidecar="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round{round}/model.json",
        metrics="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round{round}/metrics.csv",
        hparams="results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round{round}/hparams.json",
    wildcard_constraints:
        round=r"[1-9][0-9]*",
    params:
        code=code_version("pathnorm_imp.py"),
        data=dataset_params,
        recipe=recipe_params,
        imp=PATHNORM.imp_params,
        analysis=PATHNORM.analysis_params,
        state_dir=resume_dir,
    log:
        "logs/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round{round}.log",
    benchmark:
        "benchmarks/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round{round}.tsv"
    threads: TRAIN_THREADS
    priority: 30
    resources:
        runtime=runtime(recipe_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/pathnorm_imp.py"


rule pathnorm_imp_figure:
    input:
        metrics=PATHNORM.imp_metric_paths,
    output:
        csv="results/pathnorm/summary/figure4_imp.csv",
        pdf="results/pathnorm/summary/figure4_imp.pdf",
        png=report(
            "results/pathnorm/summary/figure4_imp.png",
            caption="../report/pathnorm_figure4.rst",
            category="Path-norms",
            labels={"artefact": "Figure 4 (IMP)"},
        ),
    params:
        code=code_version("pathnorm_imp_figure.py"),
        runs=PATHNORM.imp_runs,
        sparsity=PATHNORM.imp_round_sparsities,
        title=PATHNORM.title,
        gap=PATHNORM.gap,
    log:
        "logs/pathnorm/figure4_imp.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/pathnorm_imp_figure.py"


rule pathnorm_subset:
    output:
        model="results/pathnorm/subsets/{dataset}/{model}/{recipe}/f{fraction}/seed{seed}/model.safetensors",
        sidecar="results/pathnorm/subsets/{dataset}/{model}/{recipe}/f{fraction}/seed{seed}/model.json",
        metrics="results/pathnorm/subsets/{dataset}/{model}/{recipe}/f{fraction}/seed{seed}/metrics.csv",
        hparams="results/pathnorm/subsets/{dataset}/{model}/{recipe}/f{fraction}/seed{seed}/hparams.json",
    params:
        code=code_version("pathnorm_subset.py"),
        data=dataset_params,
        model=model_params,
        recipe=recipe_params,
        analysis=PATHNORM.analysis_params,
        state_dir=resume_dir,
    log:
        "logs/pathnorm/subsets/{dataset}/{model}/{recipe}/f{fraction}/seed{seed}.log",
    benchmark:
        "benchmarks/pathnorm/subsets/{dataset}/{model}/{recipe}/f{fraction}/seed{seed}.tsv"
    threads: TRAIN_THREADS
    priority: 10
    resources:
        runtime=runtime(recipe_epochs),
        mem_mb=train_mem_mb,
        gpu=TRAIN_GPUS,
        cpus_per_task=TRAIN_THREADS,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/pathnorm_subset.py"


rule pathnorm_subsets_figure:
    input:
        metrics=PATHNORM.subset_metric_paths,
    output:
        csv="results/pathnorm/summary/figure5_subsets.csv",
        pdf="results/pathnorm/summary/figure5_subsets.pdf",
        png=report(
            "results/pathnorm/summary/figure5_subsets.png",
            caption="../report/pathnorm_figure5.rst",
            category="Path-norms",
            labels={"artefact": "Figure 5 (growing subsets)"},
        ),
    params:
        code=code_version("pathnorm_subsets_figure.py"),
        runs=PATHNORM.subset_runs,
        title=PATHNORM.title,
        gap=PATHNORM.gap,
    log:
        "logs/pathnorm/figure5_subsets.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/pathnorm_subsets_figure.py"
