# What all rules files share: config validation, the study plans, code digests, resume
# directories, params and time limits from the shared config sections, wildcard constraints.
# A study's own paths, inputs and params are its plan (sparselab.studies.<study>.plan), which its
# rules file (rules/<study>.smk) names.
import math
import sys
from pathlib import Path

LIB = Path(workflow.basedir) / "lib"
CODE_DEPS_CACHE = Path(".snakemake") / "sparselab" / "code_deps.json"  # in the working directory
if str(LIB) not in sys.path:  # parse with this checkout's package, installed or not
    sys.path.insert(0, str(LIB))

from snakemake.logging import logger

from sparselab.config.code_deps import code_version as code_version_of
from sparselab.workflow import ConfigError, dataset_root_problems, load_workflow_config

_CONFIG_SOURCE = ", ".join(str(f) for f in getattr(workflow, "configfiles", [])) or "config"
try:
    CFG = load_workflow_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml", _CONFIG_SOURCE)
except ConfigError as exc:
    raise WorkflowError(f"Invalid configuration: {exc}") from None
PLANS = CFG.plans()  # study name -> its plan (sparselab.studies.<study>.plan.Plan)

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
    scope=r"dense|layerwise|global|nm_oneshot|nm_srste",
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


# ---------------------------------------------------------------- params from the shared sections
def dataset_params(wildcards):
    return CFG.datasets[wildcards.dataset].to_dict()


def model_params(wildcards):
    return CFG.models[wildcards.model].to_dict()


def recipe_params(wildcards):
    return CFG.recipes[wildcards.recipe].to_dict()


# ---------------------------------------------------------------- resources
def runtime(epochs, dataset=None):
    """A rule's time limit in minutes: ``epochs(wildcards)`` epochs on ``dataset(wildcards)`` (the
    ``dataset`` wildcard by default) at the config's minutes per epoch, growing with each retry."""

    def minutes(wildcards, attempt):
        name = dataset(wildcards) if dataset is not None else wildcards.dataset
        return CFG.shared.runtime_minutes(name, epochs(wildcards), attempt)

    return minutes


def recipe_epochs(wildcards):
    return CFG.recipes[wildcards.recipe].epochs


def ONE_EPOCH(wildcards):
    """Evaluation and feature extraction: about one pass over the data."""
    return 1


def train_mem_mb(wildcards):
    return CFG.shared.mem_mb(wildcards.dataset)


# Constants, not functions: Snakemake inspects a function's signature for every job it plans.
TRAIN_GPUS = CFG.resources["gpus"]  # GPUs of a training job; more than one trains data-parallel under torchrun
EVAL_GPUS = min(1, TRAIN_GPUS)  # evaluation and feature extraction run in one process: one GPU at most
TRAIN_THREADS = max(CFG.resources["threads"], TRAIN_GPUS)  # CPU threads, split over the job's processes


# ---------------------------------------------------------------- targets
def all_targets():
    return [target for plan in PLANS.values() for target in plan.targets()]
