"""The gradient-flow study as Snakemake rules: a tiny end-to-end run, config errors, the paper plan,
and the table's aggregation (sparselab.studies.gradflow.report)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, copy_workflow, run_snakemake, write_config

from sparselab.studies.gradflow.report import final_table, final_table_markdown

pytestmark = pytest.mark.workflow


def gradflow_config(**experiment) -> dict:  # type: ignore[no-untyped-def]
    recipe = {"batch_size": 128, "temperature": 5.0, "optimizer": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}}
    return {
        "compute": {"device": "cpu"},
        "datasets": {"digits": {"source": "digits", "val_fraction": 0.1, "channels": 3}},
        "models": {"resnet": {"arch": "cifar_resnet20", "kwargs": {"width": 2}}},
        "recipes": {
            "round": {**recipe, "epochs": 1, "schedule": {"kind": "constant"}},
            "final": {
                **recipe,
                "epochs": 2,
                "schedule": {"kind": "multistep", "milestones": [1]},
                "select": "best_val",
            },
            "dense": {**recipe, "epochs": 3, "schedule": {"kind": "multistep", "milestones": [2]}},
        },
        "oneshot": {"enabled": False},
        "gradflow": {
            "experiments": [
                {
                    "dataset": "digits",
                    "model": "resnet",
                    "round_recipe": "round",
                    "final_recipe": "final",
                    "dense_recipe": "dense",
                    "measures": ["mag_based", "tfo"],
                    "targets": [0.5],
                    "rounds": 2,
                    "seeds": [0, 1],
                    "importance_batches": 2,
                    "importance_batch_size": 64,
                    "min_fraction": 0.0,
                    "protect": ["conv1"],
                    **experiment,
                }
            ]
        },
    }


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study run to the end in a copy of the workflow (its lib/ may be edited)."""
    wf = copy_workflow(tmp_path_factory.mktemp("gradflow") / "repo")
    write_config(wf / "config.yaml", gradflow_config())
    run_snakemake(wf, "--snakefile", str(wf / "Snakefile"), "--cores", "2", timeout=600)
    return wf


def snakemake_in(wf: Path, *args: str) -> str:
    return run_snakemake(wf, "--snakefile", str(wf / "Snakefile"), *args, timeout=600).stdout


def test_tiny_study_end_to_end(done: Path) -> None:
    summary = done / "results" / "gradflow" / "summary"
    table = pd.read_csv(summary / "table_final.csv")
    assert list(table["measure"]) == ["dense", "mag_based", "tfo"] and set(table["seeds"]) == {2}
    dense = table[table["measure"] == "dense"].iloc[0]
    assert dense["compression_mean"] == pytest.approx(1.0)
    assert (table[table["measure"] != "dense"]["compression_mean"] > 1.5).all()  # half the filters, and more params
    assert "±" in (summary / "table_final.md").read_text()
    for name in ("figure_rounds", "figure_kendall"):
        assert (summary / f"{name}.png").stat().st_size > 10_000 and (summary / f"{name}.pdf").exists()
    rounds = pd.read_csv(done / "results/gradflow/digits/resnet/tfo/p0.5/seed1/rounds.csv")
    assert list(rounds["round"]) == [1, 2] and list(rounds["rows"]) == list(rounds["rows_target"])
    assert "Nothing to be done" in snakemake_in(done, "-n")
    left = [p for p in (done / ".resume").rglob("*") if p.is_file()]
    assert not left, f"finished jobs left resume state behind: {left[:5]}"


def test_editing_an_importance_measure_reruns_the_pruning_and_changes_its_outputs(done: Path, tmp_path: Path) -> None:
    """Exactly the pruning jobs (every one imports the measures), what depends on them, and no
    dense training; the rerun computes afresh (nothing resumed from the finished run)."""
    from test_workflow import planned_jobs

    wf = tmp_path / "repo"
    shutil.copytree(done, wf, symlinks=True)
    measures = wf / "lib/sparselab/structured/measures.py"
    source = measures.read_text()
    l2 = "return {n: _rows(conv.weight).norm(p=p, dim=1) for n, conv in convs.items()}"
    assert l2 in source
    measures.write_text(source.replace(l2, l2.replace("return {n: ", "return {n: -")))  # prune the largest filters
    assert planned_jobs(snakemake_in(wf, "-n")) == {
        "gradflow_prune": 4,
        "gradflow_final": 4,
        "gradflow_records": 1,
        "gradflow_report": 1,
        "all": 1,
    }
    run = "results/gradflow/digits/resnet/mag_based/p0.5/seed0"
    before = (done / run / "rounds.csv").read_text()
    snakemake_in(wf, "--cores", "2")
    assert (wf / run / "rounds.csv").read_text() != before
    assert (wf / "results/gradflow/digits/resnet/tfo/p0.5/seed0/rounds.csv").read_text() == (
        done / "results/gradflow/digits/resnet/tfo/p0.5/seed0/rounds.csv"
    ).read_text()
    log = (wf / "logs/gradflow/digits/resnet/mag_based/p0.5/seed0/prune.log").read_text()
    assert "resuming" not in log


@pytest.mark.parametrize(
    "change, message",
    [
        ({"final_recipe": "nope"}, "gradflow.experiments[0].final_recipe"),
        ({"measures": ["magnitude"]}, "gradflow.experiments[0].measures[0]"),
    ],
)
def test_config_errors_name_the_key(tmp_path, change, message) -> None:  # type: ignore[no-untyped-def]
    write_config(tmp_path / "config.yaml", gradflow_config(**change))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "config.yaml"), check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_paper_config_plans_every_job(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from test_workflow import planned_jobs

    plan = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "configs" / "lubana21.yaml")).stdout)
    # 3 models x 2 datasets x 11 measures x 3 targets x 3 seeds, plus a dense baseline per model x dataset x seed
    assert plan["gradflow_prune"] == plan["gradflow_final"] == 594 and plan["train_dense"] == 18
    assert plan["gradflow_records"] == plan["gradflow_report"] == 1


def test_final_table_means_and_stds_over_seeds_with_dense_rows_first() -> None:
    rows = []
    for measure, accs in (("grasp", (0.8, 0.9)), ("dense", (0.95, 0.97))):
        for seed, acc in enumerate(accs):
            params = 1000 if measure == "dense" else 400 + 100 * seed
            rows.append(
                {
                    "dataset": "d",
                    "model": "m",
                    "measure": measure,
                    "target": 0.0 if measure == "dense" else 0.5,
                    "seed": seed,
                    "test_top1": acc,
                    "params_alive": params,
                    "flops_alive": 2e6,
                    "compression": 1000 / params,
                    "theoretical_speedup": 1.0 if measure == "dense" else 2.0 + seed,
                    # the final job measures pruned runs only; dense rows are the reference
                    **{
                        k: None if measure == "dense" else v
                        for k, v in {
                            "latency_b64_pruned_ms": 3.0 + seed,
                            "latency_b64_dense_ms": 6.0,
                            "latency_b64_speedup": 1.5 + seed,
                            "latency_b1_speedup": 1.25,
                        }.items()
                    },
                }
            )
    table = final_table(pd.DataFrame(rows))
    assert list(table["measure"]) == ["dense", "grasp"]
    d, g = table.iloc[0], table.iloc[1]
    assert g["test_top1_mean"] == pytest.approx(85.0) and g["test_top1_std"] == pytest.approx(7.0710678, rel=1e-6)
    assert g["params_alive_mean"] == 450 and g["mflops_alive_mean"] == pytest.approx(2.0)
    assert g["theoretical_speedup_mean"] == 2.5 and d["theoretical_speedup_mean"] == 1.0
    assert g["latency_b64_speedup_mean"] == 2.0 and g["latency_b64_speedup_std"] == pytest.approx(0.7071068)
    assert g["latency_b1_speedup_std"] == 0.0 and pd.isna(d["latency_b64_speedup_mean"])
    md = final_table_markdown(table)
    assert "85.00 ± 7.07" in md and " — |" in md and "filters pruned (%)" in md and " 50 |" in md
    cells = {line.split("|")[4].strip(): [c.strip() for c in line.split("|")[-5:-1]] for line in md.splitlines()[2:4]}
    assert cells["grasp"] == ["2.50 ± 0.71", "3.50 ± 0.71", "2.00 ± 0.71", "1.25 ± 0.00"]
    assert cells["dense"] == ["1.00 ± 0.00", "—", "—", "—"]
    assert "measured speed-up b64 (×)" in md and "theoretical speed-up (×)" in md


def test_final_table_names_the_columns_it_lacks() -> None:
    with pytest.raises(ValueError, match="latency_b1_speedup"):
        final_table(pd.DataFrame([{"dataset": "d", "test_top1": 0.5}]))
