# Every helper of the workflow: config validation, path builders, input/param functions, run
# grids, resources and wildcard constraints. Stage files (rules/*.smk) only declare rules.
import math
import sys
from pathlib import Path

LIB = Path(workflow.basedir) / "lib"
if str(LIB) not in sys.path:  # parse with this checkout's package, installed or not
    sys.path.insert(0, str(LIB))

from snakemake.logging import logger

from sparselab.config.code_deps import code_dependencies
from sparselab.config.workflow import ConfigError, dataset_root_problems, load_workflow_config

_CONFIG_SOURCE = ", ".join(str(f) for f in getattr(workflow, "configfiles", [])) or "config"
try:
    CFG = load_workflow_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml", _CONFIG_SOURCE)
except ConfigError as exc:
    raise WorkflowError(f"Invalid configuration: {exc}") from None

# Missing dataset roots: a warning while planning (dry runs work without the data), an error as
# soon as a real run starts, before any job.
ROOT_PROBLEMS = dataset_root_problems(CFG)
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


# ---------------------------------------------------------------- paths
# Rules spell their paths out in full (the linter's advice); these are the ones helpers build.
DENSE_MODEL = "results/train/{dataset}/{model}/{recipe}/seed{seed}/model.safetensors"
ONESHOT_RUN = "results/oneshot/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}"
ONESHOT_SUMMARY = "results/oneshot/summary"


def code_deps(script):
    """The lib/ files a workflow script imports (inputs, so editing one reruns its jobs)."""
    return code_dependencies(Path(workflow.basedir) / "workflow_scripts" / script, LIB)


def resume_dir(wildcards, output):
    """Side directory for per-epoch resume state: not a declared output, so never deleted by Snakemake."""
    return str(Path(".resume") / Path(output[0]).parent)


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


# ---------------------------------------------------------------- resources
def _source(wildcards):
    return CFG.datasets[wildcards.dataset].source


def _minutes(wildcards, epochs, attempt):
    """Epochs x minutes per epoch of the dataset, with a margin, growing with each retry."""
    per_epoch = CFG.resources["epoch_minutes"].get(_source(wildcards), 1.0)
    return int(math.ceil(5 + 1.5 * max(1, epochs) * per_epoch * attempt))


def train_runtime(wildcards, attempt):
    return _minutes(wildcards, CFG.recipes[wildcards.recipe].epochs, attempt)


def finetune_runtime(wildcards, attempt):
    exp = CFG.oneshot_experiment(wildcards.dataset, wildcards.model)
    return _minutes(wildcards, CFG.recipes[exp.finetune_recipe].epochs, attempt)


def train_mem_mb(wildcards):
    return CFG.resources["mem_mb"].get(_source(wildcards), 8000)


def train_gpus(wildcards):
    return CFG.resources["gpus"]


def eval_runtime(wildcards, attempt):
    return _minutes(wildcards, 1, attempt)


# ---------------------------------------------------------------- targets
def oneshot_targets():
    if not CFG.oneshot_runs():
        return []
    names = ["records.csv"] + [f"accuracy_vs_sparsity.{ext}" for ext in ("csv", "md", "pdf", "png")]
    return [str(Path(ONESHOT_SUMMARY) / name) for name in names]


def all_targets():
    return oneshot_targets()
