# Every helper of the workflow: config validation, path builders, input/param functions, run
# grids, resources and wildcard constraints. Stage files (rules/*.smk) only declare rules.
import math
import sys
from pathlib import Path

LIB = Path(workflow.basedir) / "lib"
CODE_DEPS_CACHE = Path(".snakemake") / "sparselab" / "code_deps.json"  # in the working directory
if str(LIB) not in sys.path:  # parse with this checkout's package, installed or not
    sys.path.insert(0, str(LIB))

from snakemake.logging import logger

from sparselab.config.code_deps import code_version as code_version_of
from sparselab.config.transfer import NORMALIZE_CHOICE, missing_imports
from sparselab.config.workflow import ConfigError, dataset_root_problems, format_sparsity, load_workflow_config

_CONFIG_SOURCE = ", ".join(str(f) for f in getattr(workflow, "configfiles", [])) or "config"
try:
    CFG = load_workflow_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml", _CONFIG_SOURCE)
except ConfigError as exc:
    raise WorkflowError(f"Invalid configuration: {exc}") from None

# Missing dataset roots: a warning while planning (dry runs work without the data), an error as
# soon as a real run starts, before any job.
ROOT_PROBLEMS = dataset_root_problems(CFG) + missing_imports(CFG.transfer)
for _problem in ROOT_PROBLEMS:
    logger.warning(f"WARNING (a real run stops here): {_problem}")


onstart:
    if ROOT_PROBLEMS:
        raise WorkflowError("Dataset root problem(s):\n" + "\n\n".join(ROOT_PROBLEMS))


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    recipe=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    scope=r"dense|layerwise|global",
    pruned_scope=r"layerwise|global",
    sparsity=r"[0-9]+(\.[0-9]+)?(e-[0-9]+)?",  # format_sparsity: 0, 0.9, 1e-05
    seed=r"[0-9]+",
    round=r"[0-9]+",
    fraction=r"[0-9]+(\.[0-9]+)?(e-[0-9]+)?",
    name=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    measure=r"[a-z][a-z0-9_]*",
    method=r"[a-z][a-z_]*",
    target=r"0(\.[0-9]+)?(e-[0-9]+)?",  # format_sparsity of a fraction in [0, 1)
    updataset=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    upstream=r"[A-Za-z0-9][A-Za-z0-9_-]*",


# ---------------------------------------------------------------- paths
# Rules spell their paths out in full (the linter's advice); these are the ones helpers build.
DENSE_MODEL = "results/train/{dataset}/{model}/{recipe}/seed{seed}/model.safetensors"
ONESHOT_RUN = "results/oneshot/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}"
ONESHOT_SUMMARY = "results/oneshot/summary"
PATHNORM_SUMMARY = "results/pathnorm/summary"
PRETRAINED_RUN = "results/pathnorm/pretrained/{dataset}/{name}"
IMP_RUN = "results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round{round}"
SUBSET_RUN = "results/pathnorm/subsets/{dataset}/{model}/{recipe}/f{fraction}/seed{seed}"
PN = CFG.pathnorm
GRADFLOW_RUN = "results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}"
GRADFLOW_SUMMARY = "results/gradflow/summary"
GF = CFG.gradflow
DST_RUN = "results/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}"
DST_SUMMARY = "results/dst/summary"
DS = CFG.dst
TRANSFER = "results/transfer/{updataset}/{model}"
TRANSFER_SUMMARY = "results/transfer/summary"
TR = CFG.transfer


def code_version(script):
    """A digest of the lib/ files a workflow script imports, for the rule's params: editing one
    reruns its jobs ("params changed"). A param, not one input per file, because Snakemake checks
    inputs job by job (about half the time of a dry run of thousands of jobs). Each file's imports
    are kept in .snakemake/ so the next parse only reads the files that changed."""
    return code_version_of(Path(workflow.basedir) / "workflow_scripts" / script, LIB, cache=CODE_DEPS_CACHE)


def resume_dir(wildcards, output):
    """Side directory for a job's resume state: not a declared output, so never deleted by Snakemake.
    Named after the job's first output (one directory per job, never inside another job's, since
    sparselab.jobs removes it when the job succeeds or finds it stale)."""
    return str(Path(".resume") / Path(output[0]).with_suffix(""))


# ---------------------------------------------------------------- params from config
def dataset_params(wildcards):
    return CFG.datasets[wildcards.dataset].to_dict()


def model_params(wildcards):
    return CFG.models[wildcards.model].to_dict()


def recipe_params(wildcards):
    return CFG.recipes[wildcards.recipe].to_dict()


def finetune_recipe_params(wildcards):
    exp = CFG.oneshot_experiment(wildcards.dataset, wildcards.model)
    return CFG.recipes[exp.finetune_recipe].to_dict()


def oneshot_labels(wildcards):
    return {
        "study": "oneshot",
        "dataset": wildcards.dataset,
        "model": wildcards.model,
        "scope": wildcards.scope,
        "sparsity": float(wildcards.sparsity),
        "seed": int(wildcards.seed),
    }


def pathnorm_analysis_params(wildcards=None):
    return PN.analysis_spec()


def pretrained_entry(wildcards):
    return next(p for p in PN.pretrained if p.name == wildcards.name)


def pretrained_params(wildcards):
    entry = pretrained_entry(wildcards)
    return {"weights": entry.weights, "qs": list(PN.qs), "conventions": list(PN.conventions), **PN.pretrained_options}


def imp_params(wildcards=None):
    imp = PN.imp
    return {"rewind_epoch": imp.rewind_epoch, "conv_fraction": imp.conv_fraction,
            "linear_fraction": imp.linear_fraction, "scope": imp.scope}  # fmt: skip


def imp_round_sparsities(wildcards=None):
    """Nominal body and last-layer sparsity of each round (the figure's legend)."""
    return {r: PN.imp.sparsity(r)[0] for r in range(PN.imp.rounds + 1)}


# ---------------------------------------------------------------- inputs
def dense_checkpoint(wildcards):
    """The dense model a one-shot run prunes: trained with the experiment's train recipe."""
    exp = CFG.oneshot_experiment(wildcards.dataset, wildcards.model)
    return DENSE_MODEL.format(dataset=wildcards.dataset, model=wildcards.model, recipe=exp.train_recipe, seed=wildcards.seed)


def oneshot_eval_inputs(wildcards):
    """The checkpoint to evaluate: the dense model, or the finetuned pruned one (with its history)."""
    if wildcards.scope == "dense":
        return {"model": dense_checkpoint(wildcards)}
    run = Path(ONESHOT_RUN.format(**dict(wildcards.items())))
    return {"model": str(run / "model.safetensors"), "history": str(run / "metrics.csv")}


def oneshot_evaluations(wildcards=None):
    return [
        str(Path(ONESHOT_RUN.format(dataset=r.dataset, model=r.model, scope=r.scope, sparsity=r.sparsity_str, seed=r.seed)) / "eval.json")
        for r in CFG.oneshot_runs()
    ]


def pretrained_inputs(wildcards):
    """A pretrained entry of ours needs its dense run's checkpoint; torchvision weights come from
    the local hub cache (checked by the job, never downloaded)."""
    entry = pretrained_entry(wildcards)
    if entry.model is None:
        return {}
    return {"checkpoint": DENSE_MODEL.format(dataset=PN.pretrained_dataset, model=entry.model, recipe=entry.recipe, seed=entry.seed)}


def pretrained_outputs(kind):
    return [str(Path(PRETRAINED_RUN.format(dataset=PN.pretrained_dataset, name=p.name)) / kind) for p in PN.pretrained]


def imp_previous_round(wildcards):
    return str(Path(IMP_RUN.format(**{**dict(wildcards.items()), "round": int(wildcards.round) - 1})) / "model.safetensors")


def imp_rewind_state(wildcards):
    return str(Path(IMP_RUN.format(**{**dict(wildcards.items()), "round": 0})) / "rewind.pt")


def imp_metrics(wildcards=None):
    imp = PN.imp
    return {
        (r, seed): str(Path(IMP_RUN.format(dataset=imp.dataset, model=imp.model, recipe=imp.recipe, seed=seed, round=r)) / "metrics.csv")
        for seed in imp.seeds for r in range(imp.rounds + 1)
    }  # fmt: skip


def subset_metrics(wildcards=None):
    sub = PN.subsets
    return {
        (f, seed): str(Path(SUBSET_RUN.format(dataset=sub.dataset, model=sub.model, recipe=sub.recipe, fraction=format_sparsity(f), seed=seed)) / "metrics.csv")
        for f in sub.fractions for seed in sub.seeds
    }  # fmt: skip


def gradflow_experiment(wildcards):
    return GF.experiment(wildcards.dataset, wildcards.model)


def gradflow_round_recipe(wildcards):
    return CFG.recipes[gradflow_experiment(wildcards).round_recipe].to_dict()


def gradflow_final_recipe(wildcards):
    return CFG.recipes[gradflow_experiment(wildcards).final_recipe].to_dict()


def gradflow_prune_params(wildcards):
    return gradflow_experiment(wildcards).prune_spec(wildcards.measure, float(wildcards.target))


def _gradflow_keys(run):
    return {"dataset": run.dataset, "model": run.model, "measure": run.measure, "target": run.target, "seed": run.seed}


def gradflow_run_dir(run):
    return GRADFLOW_RUN.format(dataset=run.dataset, model=run.model, measure=run.measure, target=run.target_str, seed=run.seed)


def gradflow_summaries(wildcards=None):
    """[keys, final summary path] of every run."""
    return [[_gradflow_keys(r), f"{gradflow_run_dir(r)}/final/summary.json"] for r in GF.runs()]


def gradflow_rounds(wildcards=None):
    """[keys, rounds.csv path] of every run."""
    return [[_gradflow_keys(r), f"{gradflow_run_dir(r)}/rounds.csv"] for r in GF.runs()]


def gradflow_dense(wildcards=None):
    """[keys, checkpoint] of the dense baselines of experiments that name a dense_recipe."""
    out = []
    for e in GF.experiments:
        if e.dense_recipe is None:
            continue
        for seed in e.seeds:
            keys = {"dataset": e.dataset, "model": e.model, "measure": "dense", "target": 0.0, "seed": seed}
            out.append([keys, DENSE_MODEL.format(dataset=e.dataset, model=e.model, recipe=e.dense_recipe, seed=seed)])
    return out


def dst_experiment(wildcards):
    return DS.experiment(wildcards.dataset, wildcards.model)


def dst_recipe(wildcards):
    return CFG.recipes[dst_experiment(wildcards).recipe_of(wildcards.method)].to_dict()


def dst_options(wildcards):
    return dict(dst_experiment(wildcards).options)


def _dst_keys(run):
    return {"dataset": run.dataset, "model": run.model, "method": run.method, "sparsity": run.sparsity, "seed": run.seed}


def dst_run_dir(run):
    return DST_RUN.format(dataset=run.dataset, model=run.model, method=run.method, sparsity=run.sparsity_str, seed=run.seed)


def dst_summaries(wildcards=None):
    """[keys, summary path] of every run."""
    return [[_dst_keys(r), f"{dst_run_dir(r)}/summary.json"] for r in DS.runs()]


def dst_dense_checkpoint(wildcards):
    g = dst_experiment(wildcards).options["gradual"]
    return DENSE_MODEL.format(dataset=wildcards.dataset, model=wildcards.model, recipe=g["dense_recipe"], seed=wildcards.seed)


def dst_runtime(wildcards, attempt):
    return _minutes(wildcards, CFG.recipes[dst_experiment(wildcards).recipe_of(wildcards.method)].epochs, attempt)


# ---------------------------------------------------------------- transfer
def transfer_experiment(wildcards):
    return TR.experiment(wildcards.updataset, wildcards.model)


def transfer_upstream(wildcards):
    return transfer_experiment(wildcards).upstream(wildcards.upstream, wildcards.sparsity)


def transfer_checkpoint_of(exp, up):
    """Where an upstream's checkpoint comes from: rules/train.smk (dense), the GMP / AC/DC / import
    rules of rules/transfer.smk, or the configured path (another study's output, or any file)."""
    root = TRANSFER.format(updataset=exp.dataset, model=exp.model)
    if up.kind == "dense":
        return DENSE_MODEL.format(dataset=exp.dataset, model=exp.model, recipe=exp.dense_recipe, seed=exp.seed)
    if up.kind in ("gmp", "acdc"):
        return f"{root}/upstream/{up.kind}/s{up.sparsity_str}/model.safetensors"
    if up.kind == "import":
        return f"{root}/upstream/imported/{up.name}/s{up.sparsity_str}/model.safetensors"
    return up.path


def transfer_upstream_checkpoint(wildcards):
    return transfer_checkpoint_of(transfer_experiment(wildcards), transfer_upstream(wildcards))


def transfer_dense_checkpoint(wildcards):
    exp = transfer_experiment(wildcards)
    return DENSE_MODEL.format(dataset=exp.dataset, model=exp.model, recipe=exp.dense_recipe, seed=exp.seed)


def transfer_upstream_data(wildcards):
    return CFG.datasets[transfer_experiment(wildcards).dataset].to_dict()


def transfer_downstream_data(wildcards):
    """The downstream dataset, with the upstream's overrides (RigL: bicubic resampling)."""
    return {**CFG.datasets[wildcards.dataset].to_dict(), **dict(transfer_upstream(wildcards).data)}


def transfer_feature_data(wildcards):
    """The downstream data of feature extraction: the linear protocol's normalisation (the paper's
    pre-extracted features: ImageNet statistics) where the source offers a choice."""
    data = transfer_downstream_data(wildcards)
    if data["source"] in NORMALIZE_CHOICE:
        data["normalize"] = transfer_experiment(wildcards).linear["normalize"]
    return data


def transfer_recipe(part):
    return lambda wildcards: CFG.recipes[getattr(transfer_experiment(wildcards), part)["recipe"]].to_dict()


def transfer_import_source(wildcards):
    return transfer_upstream(wildcards).path


def transfer_runtime(part):
    def runtime(wildcards, attempt):
        exp = transfer_experiment(wildcards)
        dataset = exp.dataset if part in ("gmp", "acdc") else wildcards.dataset
        return _minutes_on(dataset, CFG.recipes[getattr(exp, part)["recipe"]].epochs, attempt)

    return runtime


def transfer_mem_mb(wildcards):
    """Memory of the data the job reads: the downstream dataset's, or the upstream's for GMP / AC/DC."""
    dataset = dict(wildcards.items()).get("dataset") or transfer_experiment(wildcards).dataset
    return CFG.resources["mem_mb"].get(CFG.datasets[dataset].source, 8000)


def transfer_features_runtime(wildcards, attempt):
    return _minutes_on(wildcards.dataset, 1, attempt)


def _transfer_keys(exp, up, mode, dataset):
    return {"upstream_dataset": exp.dataset, "model": exp.model, "upstream": up.name, "sparsity": up.sparsity,
            "mode": mode, "dataset": dataset}  # fmt: skip


def transfer_summaries(wildcards=None):
    """[keys, summary.json] of every linear (all seeds in one summary), full and scratch job."""
    out = []
    for exp in TR.experiments if TR else ():
        root = TRANSFER.format(updataset=exp.dataset, model=exp.model)
        for dataset in exp.downstream:
            for up in exp.upstreams():
                run = f"{root}/{up.name}/s{up.sparsity_str}"
                out.append([_transfer_keys(exp, up, "linear", dataset), f"{run}/linear/{dataset}/summary.json"])
                for seed in exp.full["seeds"] if exp.full else ():
                    out.append([{**_transfer_keys(exp, up, "full", dataset), "seed": seed}, f"{run}/full/{dataset}/seed{seed}/summary.json"])
            for seed in exp.scratch["seeds"] if exp.scratch else ():
                keys = {"upstream_dataset": exp.dataset, "model": exp.model, "upstream": "scratch", "sparsity": 0.0,
                        "mode": "scratch", "dataset": dataset, "seed": seed}  # fmt: skip
                out.append([keys, f"{root}/scratch/{dataset}/seed{seed}/summary.json"])
    return out



# ---------------------------------------------------------------- resources
def _source(wildcards):
    return CFG.datasets[wildcards.dataset].source


def _minutes(wildcards, epochs, attempt):
    """Epochs x minutes per epoch of the dataset, with a margin, growing with each retry."""
    return _minutes_on(wildcards.dataset, epochs, attempt)


def _minutes_on(dataset, epochs, attempt):
    per_epoch = CFG.resources["epoch_minutes"].get(CFG.datasets[dataset].source, 1.0)
    base = CFG.resources.get("runtime_base_minutes", 5)
    return max(1, int(math.ceil(base + 1.5 * max(1, epochs) * per_epoch * attempt)))  # SLURM's unit: 1 minute


def train_runtime(wildcards, attempt):
    return _minutes(wildcards, CFG.recipes[wildcards.recipe].epochs, attempt)


def finetune_runtime(wildcards, attempt):
    exp = CFG.oneshot_experiment(wildcards.dataset, wildcards.model)
    return _minutes(wildcards, CFG.recipes[exp.finetune_recipe].epochs, attempt)


def gradflow_prune_runtime(wildcards, attempt):
    exp = gradflow_experiment(wildcards)
    epochs = exp.rounds * CFG.recipes[exp.round_recipe].epochs + max(0, exp.options["warmup_epochs"] - 1)
    return _minutes(wildcards, int(math.ceil(1.2 * epochs)), attempt)  # + scoring, about 20 steps a round


def gradflow_final_runtime(wildcards, attempt):
    return _minutes(wildcards, CFG.recipes[gradflow_experiment(wildcards).final_recipe].epochs, attempt)


def train_mem_mb(wildcards):
    return CFG.resources["mem_mb"].get(_source(wildcards), 8000)


# Constants, not functions: Snakemake inspects a function's signature for every job it plans.
TRAIN_GPUS = CFG.resources["gpus"]  # GPUs of a training job; more than one trains data-parallel under torchrun
EVAL_GPUS = min(1, TRAIN_GPUS)  # evaluation and feature extraction run in one process: one GPU at most
TRAIN_THREADS = max(CFG.resources["threads"], TRAIN_GPUS)  # CPU threads, split over the job's processes


def eval_runtime(wildcards, attempt):
    return _minutes(wildcards, 1, attempt)


# ---------------------------------------------------------------- targets
def oneshot_targets():
    if not CFG.oneshot_runs():
        return []
    names = ["records.csv"] + [f"accuracy_vs_sparsity.{ext}" for ext in ("csv", "md", "pdf", "png")]
    return [str(Path(ONESHOT_SUMMARY) / name) for name in names]


def pathnorm_targets():
    if PN is None:
        return []
    out = []
    if PN.bound:
        out += [f"{PATHNORM_SUMMARY}/table2_bound.{ext}" for ext in ("csv", "md")]
    if PN.pretrained:
        out += [f"{PATHNORM_SUMMARY}/{name}.{ext}" for name in ("table3_pathnorms", "table5_margins") for ext in ("csv", "md")]
        out += [f"{PATHNORM_SUMMARY}/figure3_margins.{ext}" for ext in ("pdf", "png")]
    if PN.imp is not None:
        out += [f"{PATHNORM_SUMMARY}/figure4_imp.{ext}" for ext in ("csv", "pdf", "png")]
    if PN.subsets is not None:
        out += [f"{PATHNORM_SUMMARY}/figure5_subsets.{ext}" for ext in ("csv", "pdf", "png")]
    return out


def gradflow_targets():
    if GF is None or not GF.runs():
        return []
    names = ["records.csv", "table_final.csv", "table_final.md"]
    names += [f"{fig}.{ext}" for fig in ("figure_rounds", "figure_kendall") for ext in ("pdf", "png")]
    return [f"{GRADFLOW_SUMMARY}/{name}" for name in names]


def dst_targets():
    if DS is None or not DS.runs():
        return []
    names = ["records.csv", "table_accuracy.csv", "table_accuracy.md", "layer_density.csv"]
    names += [f"{fig}.{ext}" for fig in ("figure_accuracy_vs_parameters", "figure_layer_density") for ext in ("pdf", "png")]
    return [f"{DST_SUMMARY}/{name}" for name in names]


def transfer_targets():
    if TR is None or not transfer_summaries():
        return []
    names = ["records.csv", "table_transfer.csv", "table_transfer.md", "table_headline.csv", "table_headline.md"]
    names += [f"figure_transfer.{ext}" for ext in ("pdf", "png")]
    return [f"{TRANSFER_SUMMARY}/{name}" for name in names]


def all_targets():
    return oneshot_targets() + pathnorm_targets() + gradflow_targets() + dst_targets() + transfer_targets()
