"""The one-shot study's plan and typed options, without Snakemake: the run grid, the paths its rules
read and write, the params they pass, and what a bad option says."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from conftest import REPO, tiny_config

from sparselab.config.common import ConfigError
from sparselab.studies.oneshot.config import OneshotExperiment, parse
from sparselab.workflow import load_workflow_config

SCHEMA = REPO / "schemas" / "config.schema.yaml"


def plan(config: dict):
    return load_workflow_config(copy.deepcopy(config), SCHEMA).plans()["oneshot"]


def wildcards(**kw) -> SimpleNamespace:
    ns = SimpleNamespace(**kw)
    ns.items = lambda: kw.items()  # snakemake's Wildcards are also a mapping
    return ns


def test_disabled_study_has_no_targets_and_no_evaluations() -> None:
    config = tiny_config()
    config["oneshot"]["enabled"] = False
    p = plan(config)
    assert p.cfg is None and p.targets() == [] and p.evaluations() == []


def test_every_run_of_the_grid_is_evaluated_dense_baselines_included() -> None:
    evaluations = plan(tiny_config()).evaluations()
    # 2 seeds x (1 dense + 2 scopes x 2 sparsities)
    assert len(evaluations) == len(set(evaluations)) == 10
    assert "results/oneshot/digits/lenet/dense/s0/seed1/eval.json" in evaluations
    assert "results/oneshot/digits/lenet/global/s0.9/seed0/eval.json" in evaluations
    assert not any("s0.9/seed2" in e for e in evaluations)


def test_targets_are_the_records_table_and_figure() -> None:
    assert plan(tiny_config()).targets() == [
        "results/oneshot/summary/records.csv",
        *(f"results/oneshot/summary/accuracy_vs_sparsity.{ext}" for ext in ("csv", "md", "pdf", "png")),
    ]


def test_params_resolve_the_experiments_recipes_and_checkpoints() -> None:
    p = plan(tiny_config())
    w = wildcards(dataset="digits", model="lenet", scope="global", sparsity="0.5", seed="1")
    assert p.finetune_recipe(w)["epochs"] == 3 and p.finetune_epochs(w) == 3
    assert p.dense_checkpoint(w) == "results/train/digits/lenet/dense/seed1/model.safetensors"
    assert p.labels(w) == {
        "study": "oneshot",
        "dataset": "digits",
        "model": "lenet",
        "scope": "global",
        "sparsity": 0.5,
        "seed": 1,
    }
    assert p.eval_inputs(w) == {
        "model": "results/oneshot/digits/lenet/global/s0.5/seed1/model.safetensors",
        "history": "results/oneshot/digits/lenet/global/s0.5/seed1/metrics.csv",
    }
    dense = wildcards(dataset="digits", model="lenet", scope="dense", sparsity="0", seed="0")
    assert p.eval_inputs(dense) == {"model": "results/train/digits/lenet/dense/seed0/model.safetensors"}


def test_defaults_are_filled_from_the_typed_options() -> None:
    config = tiny_config()
    del config["oneshot"]["experiments"][0]["scopes"], config["oneshot"]["experiments"][0]["seeds"]
    (exp,) = plan(config).cfg.experiments
    assert exp == OneshotExperiment("digits", "lenet", "dense", "finetune", (0.5, 0.9))
    assert exp.scopes == ("layerwise", "global") and exp.seeds == (0,)
    assert plan(config).cfg.title == "One-shot magnitude pruning"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e.update(finetune_recipe="nope"), r"oneshot.experiments\[0\].finetune_recipe"),
        (lambda e: e.update(colour="red"), r"oneshot.experiments\[0\]: unknown key\(s\) 'colour'"),
    ],
)
def test_a_bad_experiment_names_its_key(edit, message) -> None:
    config = tiny_config()
    shared = load_workflow_config(copy.deepcopy(config), SCHEMA).shared
    raw = copy.deepcopy(config["oneshot"])
    edit(raw["experiments"][0])
    with pytest.raises(ConfigError, match=message):
        parse(raw, shared)  # what the composer calls (the schema would catch the unknown key first)
