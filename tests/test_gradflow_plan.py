"""The gradient-flow study's plan without Snakemake: the run grid's paths, the params its rules
pass (recipes, the pruning spec), time limits and targets (sparselab.studies.gradflow.plan)."""

from __future__ import annotations

import copy
import types

import pytest
from conftest import REPO, tiny_config

from sparselab.studies.base.plan import DENSE_MODEL
from sparselab.studies.gradflow.config import GradflowConfig
from sparselab.studies.gradflow.options import GradflowOptions
from sparselab.workflow import ConfigError, build_workflow_config, load_workflow_config

SCHEMA = REPO / "schemas" / "config.schema.yaml"


def _config(**options) -> dict:
    """The tiny config plus a gradflow section: one experiment with a dense baseline, one without."""
    config = tiny_config()
    config["recipes"]["round"] = {"epochs": 2, "batch_size": 64, "optimizer": {"lr": 0.1}}
    experiment = {
        "dataset": "digits",
        "model": "lenet",
        "round_recipe": "round",
        "final_recipe": "finetune",
        "measures": ["l1", "grasp"],
        "targets": [0.5, 0.75],
        "rounds": 3,
        "seeds": [0, 1],
        **options,
    }
    config["models"]["lenet_b"] = copy.deepcopy(config["models"]["lenet"])
    config["gradflow"] = {
        "experiments": [
            {**experiment, "dense_recipe": "dense"},
            {**experiment, "model": "lenet_b", "measures": ["bn"], "seeds": [3]},
        ]
    }
    return config


def _plan(config: dict):
    return load_workflow_config(config, SCHEMA).plans()["gradflow"]


def _wildcards(model: str = "lenet", measure: str = "grasp", target: str = "0.75", seed: int = 1):
    return types.SimpleNamespace(dataset="digits", model=model, measure=measure, target=target, seed=seed)


def test_a_disabled_study_plans_nothing():
    config = _config()
    config["gradflow"]["enabled"] = False
    plan = _plan(config)
    assert plan.targets() == [] and plan.summaries() == [] and plan.rounds() == [] and plan.dense() == []


def test_every_run_of_the_grid_has_a_summary_and_rounds():
    plan = _plan(_config())
    runs = {(k["model"], k["measure"], k["target"], k["seed"]) for k, _ in plan.summaries()}
    assert len(plan.summaries()) == len(runs) == 2 * 2 * 2 + 2  # measures x targets x seeds, and lenet_b's 2 targets
    assert plan.summary_paths()[0] == "results/gradflow/digits/lenet/l1/p0.5/seed0/final/summary.json"
    assert "results/gradflow/digits/lenet_b/bn/p0.75/seed3/rounds.csv" in plan.round_paths()
    assert all(list(keys) == ["dataset", "model", "measure", "target", "seed"] for keys, _ in plan.rounds())


def test_dense_baselines_only_where_an_experiment_names_a_dense_recipe():
    plan = _plan(_config())
    assert plan.dense_paths() == [
        DENSE_MODEL.format(dataset="digits", model="lenet", recipe="dense", seed=s) for s in (0, 1)
    ]
    assert {k["measure"] for k, _ in plan.dense()} == {"dense"} and {k["target"] for k, _ in plan.dense()} == {0.0}


def test_the_recipe_params_resolve_to_the_experiments_recipes():
    config = _config()
    plan = _plan(config)
    assert plan.round_recipe(_wildcards())["epochs"] == 2 and plan.round_recipe(_wildcards())["optimizer"]["lr"] == 0.1
    assert plan.final_recipe(_wildcards())["epochs"] == 3 and plan.final_recipe(_wildcards())["optimizer"]["lr"] == 0.01
    assert plan.final_epochs(_wildcards()) == 3


def test_prune_params_are_the_run_then_the_options_with_their_defaults():
    params = _plan(_config(alpha=0.5, protect=["conv1"])).prune_params(_wildcards(target="0.75"))
    assert list(params)[:3] == ["measure", "target", "rounds"]
    assert params == {
        "measure": "grasp",
        "target": 0.75,
        "rounds": 3,
        **GradflowOptions(alpha=0.5, protect=("conv1",)).to_dict(),
    }
    assert params["protect"] == ["conv1"] and params["importance_batches"] == 20  # lists, as Snakemake compares them


def test_prune_params_build_the_jobs_spec_and_its_hparams_record_unchanged():
    from sparselab.studies.gradflow.prune import PruneSpec

    params = _plan(_config(protect=["conv1"])).prune_params(_wildcards())
    spec = PruneSpec.from_dict(params)
    assert spec.protect == ("conv1",) and spec.measure == "grasp" and spec.importance_samples == 20 * 128
    assert list(spec.to_dict().items()) == list(params.items())  # the hparams record: same keys, order and values


def test_the_time_limit_covers_warmup_and_every_round_and_grows_with_attempts():
    plan = _plan(_config(warmup_epochs=3))
    epochs = plan.prune_epochs(_wildcards())
    assert epochs == 10  # ceil(1.2 x (3 rounds x 2 epochs + 3 - 1 warm-up epochs))
    limits = [plan.shared.runtime_minutes("digits", epochs, attempt) for attempt in (1, 2, 3)]
    assert limits[0] < limits[1] < limits[2]


def test_targets_are_the_records_table_and_figures():
    targets = _plan(_config()).targets()
    assert (
        "results/gradflow/summary/records.csv" in targets and "results/gradflow/summary/figure_kendall.png" in targets
    )
    assert len(targets) == 3 + 2 * 2


def test_the_title_defaults_to_the_sections_default():
    assert _plan(_config()).title == GradflowConfig.title == "Gradient-flow structured pruning"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpah": 0.5}, "gradflow.experiments[0]: unknown key(s) 'alpah'"),
        ({"use_init": "yes"}, "gradflow.experiments[0].use_init: 'yes' is not true/false"),
        (
            {"importance_batch_size": 0},
            "gradflow.experiments[0]: importance_batches and importance_batch_size must be >= 1",
        ),
    ],
)
def test_option_errors_name_the_key(options, message):
    with pytest.raises(ConfigError) as info:
        build_workflow_config(_config(**options))  # the schema would catch these first; the parser too
    assert message in str(info.value)


@pytest.mark.parametrize("job", ["prune", "final", "summary", "records"])
def test_job_modules_export_only_what_they_define(job):
    import importlib

    module = importlib.import_module(f"sparselab.studies.gradflow.{job}")
    assert [name for name in getattr(module, "__all__", ()) if not hasattr(module, name)] == []
