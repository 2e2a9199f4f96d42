"""The path-norm study's plan without Snakemake: targets, run paths, inputs and the params its rules
pass (whose ``repr`` Snakemake compares to decide what is stale), from a small config."""

from __future__ import annotations

import copy

import pytest
from conftest import REPO, tiny_config

from sparselab.studies.pathnorm.options import AnalysisSpec, PretrainedSpec
from sparselab.workflow import ConfigError, load_workflow_config

SCHEMA = REPO / "schemas" / "config.schema.yaml"
SUMMARY = "results/pathnorm/summary"
IMAGENET = {
    "name": "imagenet",
    "B": 2.64,
    "K": 9,
    "P": 1,
    "d_in": 150528,
    "d_out": 1000,
    "n": 1268355,
    "archs": {"resnet18": 18},
}
DIGITS = {
    "name": "digits",
    "mean": [0.3],
    "std": [0.4],
    "K": 1,
    "P": 0,
    "d_in": 64,
    "d_out": 10,
    "n": 1212,
    "archs": {"lenet": 3},
}


class Wildcards(dict):
    """What Snakemake hands an input/params function: attributes and items."""

    __getattr__ = dict.__getitem__


def config(**pathnorm) -> dict:
    raw = tiny_config()
    raw["pathnorm"] = {
        "title": "PN",
        "analysis": {"margin_samples": 64, "conventions": ["gbrg24"]},
        "bound": [IMAGENET, DIGITS],
        "pretrained": {
            "dataset": "digits",
            "models": [
                {"name": "mine", "model": "lenet", "recipe": "dense", "seed": 1},
                {"name": "r18", "weights": "ResNet18_Weights.IMAGENET1K_V1"},
            ],
        },
        "imp": {"dataset": "digits", "model": "lenet", "recipe": "dense", "rounds": 2, "seeds": [0, 3]},
        "subsets": {"dataset": "digits", "model": "lenet", "recipe": "finetune", "fractions": [0.5, 0.25]},
        **pathnorm,
    }
    return raw


def plan(raw: dict):
    return load_workflow_config(copy.deepcopy(raw), SCHEMA).plans()["pathnorm"]


def test_disabled_study_has_no_targets():
    p = plan(config(enabled=False))
    assert p.cfg is None and p.targets() == [] and p.pretrained_outputs("summary.json") == []
    assert p.gap == "running"
    assert plan(tiny_config()).targets() == []  # off unless configured


def test_targets_of_each_part():
    raw = config()
    assert plan(raw).targets() == [
        f"{SUMMARY}/table2_bound.csv",
        f"{SUMMARY}/table2_bound.md",
        f"{SUMMARY}/table3_pathnorms.csv",
        f"{SUMMARY}/table3_pathnorms.md",
        f"{SUMMARY}/table5_margins.csv",
        f"{SUMMARY}/table5_margins.md",
        f"{SUMMARY}/figure3_margins.pdf",
        f"{SUMMARY}/figure3_margins.png",
        f"{SUMMARY}/figure4_imp.csv",
        f"{SUMMARY}/figure4_imp.pdf",
        f"{SUMMARY}/figure4_imp.png",
        f"{SUMMARY}/figure5_subsets.csv",
        f"{SUMMARY}/figure5_subsets.pdf",
        f"{SUMMARY}/figure5_subsets.png",
    ]
    for part in ("bound", "pretrained", "imp", "subsets"):
        del raw["pathnorm"][part]
    assert plan(raw).targets() == []


def test_imp_runs_rounds_and_inputs():
    p = plan(config())
    run = "results/pathnorm/imp/digits/lenet/dense/seed{seed}/round{round}/metrics.csv"
    assert p.imp_runs() == [[r, s, run.format(seed=s, round=r)] for s in (0, 3) for r in range(3)]
    assert p.imp_metric_paths() == [path for _, _, path in p.imp_runs()]
    assert p.imp_round_sparsities() == pytest.approx({0: 0.0, 1: 0.2, 2: 0.36})
    assert repr(p.imp_params()) == repr(
        {"rewind_epoch": 5, "conv_fraction": 0.2, "linear_fraction": 0.1, "scope": "layerwise"}
    )
    w = Wildcards(dataset="digits", model="lenet", recipe="dense", seed="3", round="2")
    assert p.imp_previous_round(w) == "results/pathnorm/imp/digits/lenet/dense/seed3/round1/model.safetensors"
    assert p.imp_rewind_state(w) == "results/pathnorm/imp/digits/lenet/dense/seed3/round0/rewind.pt"


def test_subset_runs_and_recipe():
    p = plan(config())
    assert p.subset_runs() == [
        [f, s, f"results/pathnorm/subsets/digits/lenet/finetune/f{f}/seed{s}/metrics.csv"]
        for f in (0.5, 0.25)
        for s in (0,)
    ]
    sub = p.cfg.subsets
    assert p.recipe(sub.recipe)["epochs"] == 3 and p.epochs(p.cfg.imp.recipe) == 12
    imp = p.cfg.imp  # the time limit of an IMP round grows with each retry
    limits = [p.shared.runtime_minutes(imp.dataset, p.epochs(imp.recipe), attempt) for attempt in (1, 4)]
    assert limits[0] < limits[1]


def test_analysis_param_keeps_the_configs_key_order_and_fills_defaults():
    params = plan(config()).analysis_params()
    # qs first, the keys the config states in its order, then the schema's defaults
    assert repr(params) == repr(
        {
            "qs": [1.0, 2.0, 4.0, 8.0, 16.0],
            "margin_samples": 64,
            "conventions": ["gbrg24"],
            "seed": 0,
            "batch_size": 512,
        }
    )
    spec = AnalysisSpec.from_dict(params)
    assert spec == AnalysisSpec(conventions=("gbrg24",), margin_samples=64)


def test_pretrained_params_and_inputs():
    p = plan(config(qs=[1, 2], conventions=["exact"]))
    mine, r18 = Wildcards(name="mine", dataset="digits"), Wildcards(name="r18", dataset="digits")
    assert p.pretrained_inputs(mine) == {"checkpoint": "results/train/digits/lenet/dense/seed1/model.safetensors"}
    assert p.pretrained_inputs(r18) == {}
    params = p.pretrained_params(r18)
    assert repr(params) == repr(
        {
            "weights": "ResNet18_Weights.IMAGENET1K_V1",
            "qs": [1.0, 2.0],
            "conventions": ["exact"],
            "margin_samples": None,
            "batch_size": 256,
            "hub_dir": None,
        }
    )
    assert PretrainedSpec.from_dict(params).weights == "ResNet18_Weights.IMAGENET1K_V1"
    assert p.pretrained_params(mine)["weights"] is None
    assert p.pretrained_outputs("margins.safetensors") == [
        "results/pathnorm/pretrained/digits/mine/margins.safetensors",
        "results/pathnorm/pretrained/digits/r18/margins.safetensors",
    ]


def test_bound_settings_pass_what_the_config_states():
    settings = plan(config()).bound_settings()
    assert repr(settings[0]) == repr({**IMAGENET, "float32": True})  # no mean/std when B is given
    assert repr(settings[1]) == repr({**DIGITS, "B": None, "float32": True})


@pytest.mark.parametrize(
    ("part", "value", "message"),
    [
        ("bound", [{**DIGITS, "mean": None}], r"pathnorm.bound\[0\]: setting 'digits': give B, or mean and std"),
        (
            "pretrained",
            {"dataset": "digits", "models": [{"name": "x", "model": "lenet", "weights": "W"}]},
            r"pathnorm.pretrained.models\[0\]: give either weights",
        ),
        ("pretrained", {"dataset": "digits", "models": [{"name": "x", "model": "lenet"}]}, "needs the recipe"),
        (
            "imp",
            {"dataset": "digits", "model": "lenet", "recipe": "finetune", "rounds": 1, "rewind_epoch": 3},
            r"rewind_epoch: 3 must be in \[1, 3\)",
        ),
    ],
)
def test_invalid_parts_are_refused_with_their_key(part, value, message):
    raw = config()
    raw["pathnorm"][part] = value
    if part == "bound":  # the schema allows no null mean: give the typed parser what the schema lets through
        del raw["pathnorm"]["bound"][0]["mean"]
    with pytest.raises(ConfigError, match=message):
        plan(raw)
