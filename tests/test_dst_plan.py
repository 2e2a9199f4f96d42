"""The dynamic sparse training study's plan without Snakemake: run paths, recipes and epochs per
method, the gradual run's dense parent, the options param the jobs type, targets and time limits."""

from __future__ import annotations

import copy
import types
from typing import Any

import pytest
from conftest import REPO

from sparselab.config.common import ConfigError
from sparselab.config.schema import validate_schema
from sparselab.studies.dst.options import DstOptions
from sparselab.studies.dst.plan import SUMMARY
from sparselab.workflow import build_workflow_config

RECIPE = {"batch_size": 100, "optimizer": {"lr": 0.1}, "schedule": {"kind": "constant"}}
CONFIG: dict[str, Any] = {
    "resources": {"epoch_minutes": {"digits": 1.0}},
    "datasets": {"digits": {"source": "digits"}},
    "models": {"lenet": {"arch": "lenet300_100", "kwargs": {"hidden": [32, 16]}}},
    "recipes": {
        name: {**RECIPE, "epochs": epochs}
        for name, epochs in (("train", 2), ("long", 4), ("deepr", 3), ("dsr_only", 5), ("prune", 6))
    },
    "oneshot": {"enabled": False},
    "dst": {
        "title": "DST here",
        "experiments": [
            {
                "dataset": "digits",
                "model": "lenet",
                "recipe": "train",
                "long_recipe": "long",
                "deepr_recipe": "deepr",
                "method_recipes": {"dsr": "dsr_only"},
                "methods": ["dsr", "set", "deepr", "static", "thin_dense", "dense", "gradual"],
                "sparsities": [0.9, 0.95],
                "seeds": [0, 1],
                "stop_epoch": 8,
                "period": {0: 5, 4: 10},
                "gradual": {"recipe": "prune", "dense_recipe": "train", "iterations": 4},
            }
        ],
    },
}


def plan_of(config: dict[str, Any]) -> Any:
    config = copy.deepcopy(config)
    validate_schema(config, REPO / "schemas" / "config.schema.yaml")
    return build_workflow_config(config).plans()["dst"]


def run(method: str, sparsity: str = "0.9", seed: str = "0") -> types.SimpleNamespace:
    return types.SimpleNamespace(dataset="digits", model="lenet", method=method, sparsity=sparsity, seed=seed)


@pytest.fixture(scope="module")
def plan() -> Any:
    return plan_of(CONFIG)


def test_every_run_of_the_grid_has_its_summary_and_dense_runs_once_per_seed(plan: Any) -> None:
    paths = plan.summary_paths()
    sparse = ["dsr", "set", "deepr", "static", "thin_dense", "gradual"]
    want = {
        f"results/dst/digits/lenet/{m}/s{s}/seed{seed}/summary.json"
        for m in sparse
        for s in ("0.9", "0.95")
        for seed in (0, 1)
    } | {f"results/dst/digits/lenet/dense/s0/seed{seed}/summary.json" for seed in (0, 1)}
    assert len(paths) == len(want) == 26 and set(paths) == want
    keys, path = plan.summaries()[0]
    assert path == paths[0] and set(keys) == {"dataset", "model", "method", "sparsity", "seed"}


@pytest.mark.parametrize(
    ("method", "recipe"),
    [
        ("dsr", "dsr_only"),
        ("set", "train"),
        ("dense", "train"),
        ("static", "long"),
        ("thin_dense", "long"),
        ("deepr", "deepr"),
    ],
)
def test_each_method_trains_with_its_recipe(plan: Any, method: str, recipe: str) -> None:
    assert plan.method_recipe(run(method)) == plan.shared.recipes[recipe].to_dict()
    assert plan.method_epochs(run(method)) == CONFIG["recipes"][recipe]["epochs"]


def test_gradual_prunes_the_dense_network_of_its_dense_recipe(plan: Any) -> None:
    w = run("gradual", seed="1")
    assert plan.gradual_recipe(w) == plan.shared.recipes["prune"].to_dict() and plan.gradual_epochs(w) == 6
    assert plan.dense_checkpoint(w) == "results/train/digits/lenet/train/seed1/model.safetensors"


def test_the_options_param_is_the_validated_section_and_types_with_its_defaults(plan: Any) -> None:
    params = plan.options(run("set"))
    assert params["stop_epoch"] == 8 and params["period"] == {0: 5, 4: 10}
    assert params["granularity"] == "element" and params["deepr"]["eta"] == 0.01  # schema defaults, filled
    options = DstOptions.from_dict(params)  # what the jobs do
    assert options.gradual is not None and options.gradual.iterations == 4 and options.gradual.freq == 2
    assert options.np_target == 20_000 and options.thin.widths == "auto"


def test_the_time_limit_grows_with_each_attempt(plan: Any) -> None:
    epochs = plan.method_epochs(run("static"))
    first, second = (plan.shared.runtime_minutes("digits", epochs, attempt) for attempt in (1, 2))
    assert second > first > 0


def test_targets_are_the_summary_artefacts_and_none_when_disabled(plan: Any) -> None:
    assert plan.title == "DST here"
    assert f"{SUMMARY}/records.csv" in plan.targets() and f"{SUMMARY}/figure_layer_density.png" in plan.targets()
    assert len(plan.targets()) == 8
    off = plan_of({**CONFIG, "dst": {**CONFIG["dst"], "enabled": False}})
    assert off.cfg is None and off.targets() == [] and off.summary_paths() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gradual": None}, "the gradual method needs gradual"),
        ({"thin": {"widths": {0.9: 0.5, 0.95: 0.4}}}, "thin: widths given per sparsity: also name the model kwarg"),
        ({"method_recipes": {"dsr": "nope"}}, "method_recipes.dsr"),
    ],
)
def test_option_errors_name_their_key_at_parse_time(change: dict[str, Any], message: str) -> None:
    config = copy.deepcopy(CONFIG)
    experiment = config["dst"]["experiments"][0]
    for key, value in change.items():
        if value is None:
            experiment.pop(key)
        else:
            experiment[key] = value
    with pytest.raises(ConfigError, match=message):
        plan_of(config)


GROWTH = copy.deepcopy(CONFIG)
GROWTH["dst"]["experiments"][0].update(
    methods=["dsr", "rigl", "snfs", "dense", "gradual"], rigl={"delta_t": 5}, snfs={"alpha": 0.4}
)


def test_rigl_and_snfs_runs_are_planned_and_only_their_jobs_read_their_blocks() -> None:
    plan = plan_of(GROWTH)
    paths = set(plan.summary_paths())
    assert {f"results/dst/digits/lenet/{m}/s0.9/seed1/summary.json" for m in ("rigl", "snfs")} <= paths
    assert len(paths) == 4 * 2 * 2 + 2
    rigl, snfs = plan.options(run("rigl")), plan.options(run("snfs"))
    assert "snfs" not in rigl and "rigl" not in snfs
    assert rigl["rigl"] == {
        "delta_t": 5,
        "stop": 0.75,
        "alpha": 0.3,
        "densities": "erk",
        "dense_first": False,
        "erk_power": 1.0,
    }
    options = DstOptions.from_dict(snfs)  # what the job does: the schema's defaults and the class's agree
    assert (options.snfs.alpha, options.snfs.delta_t, options.snfs.densities) == (0.4, "epoch", "uniform")
    assert plan.method_recipe(run("rigl")) == plan.shared.recipes["train"].to_dict()  # the experiment's recipe
    # the other jobs' params are exactly what they were without the blocks (no rerun)
    before = plan_of({**CONFIG})
    for method in ("dsr", "dense"):
        assert plan.options(run(method)) == before.options(run(method))
    gradual = types.SimpleNamespace(dataset="digits", model="lenet", sparsity="0.9", seed="0")
    assert plan.options(gradual) == before.options(gradual)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sparsity_fc": 0.5}, r"dst.experiments\[0\].sparsity_fc: rigl and snfs spread the density"),
        ({"rigl": {"alpha": 1.5}}, "alpha"),
        ({"snfs": {"delta_t": 0}}, "delta_t"),
        ({"rigl": {"period": 3}}, "period"),
    ],
)
def test_rigl_and_snfs_option_errors_name_their_key(change: dict[str, Any], message: str) -> None:
    config = copy.deepcopy(GROWTH)
    config["dst"]["experiments"][0].update(change)
    with pytest.raises(ConfigError, match=message):
        plan_of(config)
