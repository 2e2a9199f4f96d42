"""The dynamic sparse training study as Snakemake rules: every method end to end on a tiny config,
config errors, the paper plan, and the thin-dense width match."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import REPO, run_snakemake, write_config

from sparselab.config import ModelHparams
from sparselab.studies.dst.sparse import sparse_learnable, thin_kwargs

pytestmark = pytest.mark.workflow
METHODS = ["dsr", "set", "deepr", "rigl", "snfs", "static", "tied", "thin_dense", "dense", "gradual"]


def dst_config(**experiment) -> dict:  # type: ignore[no-untyped-def]
    recipe = {
        "batch_size": 100,
        "optimizer": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        "schedule": {"kind": "constant"},
    }
    return {
        "compute": {"device": "cpu"},
        "datasets": {"digits": {"source": "digits"}},
        "models": {"lenet": {"arch": "lenet300_100", "kwargs": {"hidden": [32, 16], "batch_norm": True}}},
        "recipes": {"train": {**recipe, "epochs": 2}, "prune": {**recipe, "epochs": 3}},
        "oneshot": {"enabled": False},
        "dst": {
            "experiments": [
                {
                    "dataset": "digits",
                    "model": "lenet",
                    "recipe": "train",
                    "methods": METHODS,
                    "sparsities": [0.9],
                    "seeds": [0, 1],
                    "period": {0: 4},
                    "np_target": 20,
                    "rigl": {"delta_t": 4},
                    "snfs": {"delta_t": 4},
                    "gradual": {"recipe": "prune", "dense_recipe": "train", "start": 0, "freq": 1, "iterations": 2},
                    **experiment,
                }
            ]
        },
    }


def test_every_method_runs_end_to_end_and_appears_in_the_table_and_figures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    write_config(tmp_path / "config.yaml", dst_config())
    run_snakemake(tmp_path, "--cores", "2", "--configfile", str(tmp_path / "config.yaml"), timeout=600)
    summary = tmp_path / "results" / "dst" / "summary"
    table = pd.read_csv(summary / "table_accuracy.csv")
    assert sorted(table["method"]) == sorted(METHODS) and set(table["seeds"]) == {2}
    params = dict(zip(table["method"], table["parameters"]))
    assert params["dense"] > params["thin_dense"] and params["dense"] > 5 * params["static"]
    assert params["static"] == params["dsr"] == params["set"] == params["deepr"]  # same budget, conserved
    assert params["snfs"] == params["static"] and abs(params["rigl"] - params["static"]) <= 3  # ERK rounds per layer
    speedup = dict(zip(table["method"], table["speedup"]))
    assert speedup["dense"] == speedup["tied"] == 1.0 and speedup["static"] > 5 and speedup["thin_dense"] > 1
    dropped = dict(zip(table["method"], table["dropped"]))
    assert dropped["rigl"] > 0 and dropped["snfs"] > 0 and pd.isna(dropped["dsr"])
    md = (summary / "table_accuracy.md").read_text()
    assert "theoretical speed-up" in md and "| rigl " in md
    densities = pd.read_csv(summary / "layer_density.csv")
    assert set(densities["method"]) == {"dsr", "set", "deepr", "rigl", "snfs", "static", "gradual"}
    for name in ("figure_accuracy_vs_parameters", "figure_layer_density"):
        assert (summary / f"{name}.png").stat().st_size > 10_000 and (summary / f"{name}.pdf").exists()
    again = run_snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "config.yaml"))
    assert "Nothing to be done" in again.stdout


@pytest.mark.parametrize(
    "change, message",
    [
        ({"methods": ["dsr", "mest"]}, "dst.experiments[0].methods[1]"),
        ({"methods": ["gradual"], "gradual": None}, "dst.experiments[0].gradual"),
        ({"recipe": "nope"}, "dst.experiments[0].recipe"),
    ],
)
def test_config_errors_name_the_key(tmp_path, change, message) -> None:  # type: ignore[no-untyped-def]
    config = dst_config(**change)
    if change.get("gradual", 1) is None:
        del config["dst"]["experiments"][0]["gradual"]
    write_config(tmp_path / "config.yaml", config)
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "config.yaml"), check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_paper_config_plans_every_job(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from test_workflow import planned_jobs

    plan = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "configs" / "mostafa19.yaml")).stdout)
    # WRN: 5 seeds x (8 methods x 5 sparsities + dense); ImageNet: 8 x 2 + dense; MNIST: 5 x (5 x 6 + dense)
    assert plan["dst_train"] == 5 * 41 + 17 + 5 * 31
    assert plan["dst_gradual"] == 5 * 5 + 2 + 5 * 6 and plan["train_dense"] == 5 + 1 + 5
    assert plan["dst_records"] == plan["dst_report"] == 1


def test_thin_dense_width_matches_the_sparse_parameter_budget() -> None:
    model = ModelHparams("wrn", {"depth": 28, "widen_factor": 2.0})
    assert sparse_learnable(model, 10, (3, 32, 32), 0.9) == 161_229  # notes §3
    assert sparse_learnable(model, 10, (3, 32, 32), 0.5) == 741_850
    from sparselab.models import build_model

    kwargs = thin_kwargs(model, 10, (3, 32, 32), 161_229)
    n = sum(p.numel() for p in build_model("wrn", 10, (3, 32, 32), **kwargs).parameters())
    assert abs(n - 161_229) / 161_229 < 0.03
