"""The sparse-transfer study as Snakemake rules: a tiny study end to end (dense, GMP, AC/DC, RigL and
a checkpoint of another study as upstreams; linear, full and scratch; the upstream table), config errors naming their key,
a missing imported checkpoint stopping a real run before any job, and the paper plan."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import REPO, run_snakemake, write_config

pytestmark = pytest.mark.workflow


def transfer_config(**experiment) -> dict:  # type: ignore[no-untyped-def]
    recipe = {
        "batch_size": 32,
        "optimizer": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"kind": "constant"},
    }
    return {
        "compute": {"device": "cpu"},
        "datasets": {"digits": {"source": "digits"}, "loops": {"source": "digits_loops", "train_per_class": 5}},
        "models": {"lenet": {"arch": "lenet300_100", "kwargs": {"hidden": [32, 16]}}},
        "recipes": {
            "dense": {**recipe, "epochs": 3},
            "gmp": {**recipe, "epochs": 3},
            "acdc": {**recipe, "epochs": 10},
            "full": {**recipe, "epochs": 2},
            "finetune": {**recipe, "epochs": 1},
        },
        "oneshot": {
            "experiments": [
                {
                    "dataset": "digits",
                    "model": "lenet",
                    "train_recipe": "dense",
                    "finetune_recipe": "finetune",
                    "scopes": ["global"],
                    "sparsities": [0.9],
                    "seeds": [0],
                }
            ]
        },
        "transfer": {
            "title": "tiny transfer",
            "experiments": [
                {
                    "dataset": "digits",
                    "model": "lenet",
                    "dense_recipe": "dense",
                    "gmp": {"recipe": "gmp", "sparsities": [0.8], "start": 0, "freq": 1, "end": 2},
                    "acdc": {"recipe": "acdc", "sparsities": [0.8]},
                    "rigl": {"recipe": "acdc", "sparsities": [0.8], "delta_t": 10},
                    "checkpoints": [
                        {
                            "name": "oneshot",
                            "sparsity": 0.9,
                            "path": "results/oneshot/digits/lenet/global/s0.9/seed0/model.safetensors",
                        }
                    ],
                    "downstream": ["loops"],
                    "linear": {"seeds": [0, 1], "epochs": 4, "decay_after": [2]},
                    "full": {"recipe": "full", "seeds": [0], "lr": {"loops": 0.02}},
                    "scratch": {"recipe": "full", "seeds": [0]},
                    **experiment,
                }
            ],
        },
    }


def test_tiny_study_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    write_config(tmp_path / "config.yaml", transfer_config())
    run_snakemake(tmp_path, "--cores", "2", "--configfile", str(tmp_path / "config.yaml"), timeout=900)
    root = tmp_path / "results" / "transfer"
    records = pd.read_csv(root / "summary" / "records.csv")
    # 5 upstreams x (2 linear seeds + 1 full seed) + 1 scratch run
    assert len(records) == 5 * 3 + 1
    assert set(records["upstream"]) == {"dense", "gmp", "acdc", "rigl_erk", "oneshot", "scratch"}
    # the upstreams are as sparse as asked (global conv_fc threshold: the whole network)
    for method in ("gmp", "acdc"):
        summary = json.loads((root / "digits" / "lenet" / "upstream" / method / "s0.8" / "summary.json").read_text())
        assert summary["sparsity"] == pytest.approx(0.8, abs=1e-3)
    rigl = json.loads((root / "digits" / "lenet" / "upstream" / "rigl" / "s0.8" / "summary.json").read_text())
    assert rigl["mask_updates"] > 0 and rigl["sparse_layers_sparsity"] == pytest.approx(0.8, abs=1e-2)
    # full finetuning keeps the backbone sparsity the features were extracted with
    measured = records.groupby(["upstream", "dataset", "mode"])["measured_sparsity"].first().unstack("mode")
    sparse = measured.drop(index=["scratch", "dense"], level=0)
    assert (sparse["full"] - sparse["linear"]).abs().max() < 1e-12 and (sparse["linear"] > 0.5).all()
    # the per-dataset lr replaced the recipe's (0.05) in full finetuning, not in the scratch baseline
    full = json.loads(
        (root / "digits" / "lenet" / "gmp" / "s0.8" / "full" / "loops" / "seed0" / "hparams.json").read_text()
    )
    scratch = json.loads((root / "digits" / "lenet" / "scratch" / "loops" / "seed0" / "hparams.json").read_text())
    assert full["train"]["optimizer"]["lr"] == 0.02 and scratch["train"]["optimizer"]["lr"] == 0.05
    meta = json.loads((root / "digits" / "lenet" / "dense" / "s0" / "features" / "loops" / "train.json").read_text())
    assert meta["samples"] == 5 * 3 and meta["dim"] == 16 and meta["split"] == "train"
    table = pd.read_csv(root / "summary" / "table_transfer.csv")
    assert set(table["dataset"]) == {"mean", "loops"}
    headline = (root / "summary" / "table_headline.md").read_text()
    assert "scratch" in headline and "gmp 80%" in headline
    assert (root / "summary" / "figure_transfer.png").stat().st_size > 10_000
    ups = pd.read_csv(root / "summary" / "table_upstreams.csv").set_index("label")
    assert list(ups.index) == ["dense", "gmp 80%", "acdc 80%", "rigl_erk 80%", "oneshot 90%"]
    assert ups.loc["dense", "theoretical_speedup"] == 1.0 and (ups["params"] == ups.loc["dense", "params"]).all()
    assert (ups.drop(index="dense")["theoretical_speedup"] > 2).all()  # 80-90% of the matmuls skipped
    assert "rigl_erk 80%" in (root / "summary" / "table_upstreams.md").read_text()
    again = run_snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "config.yaml"))
    assert "Nothing to be done" in again.stdout


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"checkpoints": [{"name": "dense", "path": "x.safetensors", "sparsity": 0.5}]},
            "transfer.experiments[0].checkpoints[0].name",
        ),
        ({"dense_recipe": None}, "transfer.experiments[0].gmp"),
        ({"full": {"recipe": "full", "seeds": [0], "lr": {"cars": 0.01}}}, "transfer.experiments[0].full.lr.cars"),
        ({"acdc": {"recipe": "dense", "sparsities": [0.8]}}, "transfer.experiments[0].acdc.recipe"),
        ({"downstream": ["nope"]}, "transfer.experiments[0].downstream[0]"),
        (
            {
                "checkpoints": [
                    {
                        "name": "rigl",
                        "path": "r.pth",
                        "sparsity": 0.9,
                        "import": "rigl",
                        "data": {"interpolaton": "bicubic"},
                    }
                ]
            },
            "transfer.experiments[0].checkpoints[0].data",
        ),
    ],
)
def test_config_errors_name_the_key(tmp_path, change, message) -> None:  # type: ignore[no-untyped-def]
    write_config(tmp_path / "config.yaml", transfer_config(**change))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "config.yaml"), check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_heldout_tasks_must_share_the_upstream_split(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = transfer_config()
    config["datasets"]["loops"]["split_seed"] = 3  # other held-out images: some were the upstream's training data
    write_config(tmp_path / "config.yaml", config)
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "config.yaml"), check=False)
    assert proc.returncode != 0 and "transfer.experiments[0].downstream[0]" in proc.stdout + proc.stderr


def test_a_missing_imported_checkpoint_stops_a_real_run_before_any_job(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = transfer_config(checkpoints=[{"name": "rigl", "path": "ckpt/rigl.pth", "sparsity": 0.9, "import": "rigl"}])
    write_config(tmp_path / "config.yaml", config)
    plan = run_snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "config.yaml"))  # planning works
    assert "transfer_import" in plan.stdout and "ckpt/rigl.pth does not exist" in plan.stdout + plan.stderr
    proc = run_snakemake(tmp_path, "--cores", "1", "--configfile", str(tmp_path / "config.yaml"), check=False)
    assert proc.returncode != 0 and "transfer.experiments[0].checkpoints (rigl)" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_paper_config_plans_every_job(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from test_workflow import planned_jobs

    plan = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "configs" / "iofinova22.yaml")).stdout)
    upstreams = 1 + 4 + 4 + 7  # dense, GMP and AC/DC at 80/90/95/98%, seven imported checkpoints
    assert plan["transfer_gmp"] == plan["transfer_acdc"] == 4 and plan["transfer_import"] == 7
    assert plan["train_dense"] == 1
    assert plan["transfer_features"] == plan["transfer_linear"] == upstreams * 12
    assert plan["transfer_full"] == upstreams * 12 * 3 and "transfer_scratch" not in plan
    assert plan["transfer_records"] == plan["transfer_report"] == plan["transfer_upstreams"] == 1
    assert "transfer_rigl" not in plan  # the paper's RigL upstreams are the published checkpoints
