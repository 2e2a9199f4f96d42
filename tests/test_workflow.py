"""The workflow end to end on a tiny config, in a copy of the repository's workflow files.

One module-scoped run (about a minute on 2 cores) feeds several checks: outputs that make sense,
nothing left to do afterwards, the report, lint, and which jobs a config or code edit makes stale.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, copy_workflow, expected_parents, run_snakemake, sidecar_parents, tiny_config, write_config
from safetensors.torch import load_file

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    if "Nothing to be done" in dry_run_output:
        return {}
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.strip().splitlines()[2:]]
    return {rule: int(count) for rule, count in rows if rule != "total"}


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wf = copy_workflow(tmp_path_factory.mktemp("wf") / "repo")
    write_config(wf / "config.yaml", tiny_config())
    snakemake(wf, "--cores", "2")
    return wf


def test_outputs_make_sense(done):
    results = done / "results"
    records = pd.read_csv(results / "oneshot/summary/records.csv")
    assert len(records) == 2 * (1 + 2 * 2)  # seeds x (dense + scopes x sparsities)
    dense = records[records["scope"] == "dense"]
    assert (dense["test_top1"] > 0.9).all(), dense["test_top1"].tolist()
    pruned = records[records["scope"] != "dense"]
    assert (pruned["weight_sparsity"] - pruned["sparsity"]).abs().max() < 1e-3
    assert (pruned["test_top1"] >= pruned["start_test_top1"] - 0.02).all()  # finetuning does not hurt

    for run in (results / "oneshot/digits/lenet").glob("*/s0.*/seed*"):
        target = float(run.parent.name[1:])
        for name in ("pruned", "model"):
            meta = json.loads((run / f"{name}.json").read_text())
            assert meta["sparsity"]["sparsity"] == pytest.approx(target, abs=1e-3), run
            tensors = load_file(str(run / f"{name}.safetensors"))
            for key, mask in tensors.items():
                if key.startswith("mask/"):
                    assert (tensors[key[len("mask/") :]][~mask] == 0).all(), f"{run}/{name}: {key} not enforced"
        hparams = json.loads((run / "hparams.json").read_text())
        assert hparams["train"]["epochs"] == 3 and hparams["parent"]["path"].endswith("pruned.safetensors")
        # lineage through the rules: dense -> pruned -> finetuned, each path relative to the
        # workflow root as the rule gave it, each hash the parent file's
        dense = f"results/train/digits/lenet/dense/{run.name}/model.safetensors"
        pruned = f"{run.relative_to(done)}/pruned.safetensors"
        assert sidecar_parents(run / "pruned.safetensors") == [
            {"role": "dense", "path": dense, "sha256": expected_parents(("dense", done / dense))[0]["sha256"]}
        ]
        assert sidecar_parents(run / "model.safetensors") == [
            {"role": "pruned", "path": pruned, "sha256": expected_parents(("pruned", done / pruned))[0]["sha256"]}
        ]

    summary = pd.read_csv(results / "oneshot/summary/accuracy_vs_sparsity.csv")
    assert set(summary["scope"]) == {"dense", "layerwise", "global"} and (summary["n_seeds"] == 2).all()
    assert "± " in (results / "oneshot/summary/accuracy_vs_sparsity.md").read_text()
    for ext in ("pdf", "png"):
        assert (results / f"oneshot/summary/accuracy_vs_sparsity.{ext}").stat().st_size > 10_000
    assert len(list((done / "logs").rglob("*.log"))) == 24  # every job logged (the reproduction table too)
    assert not list((done / ".resume").rglob("resume.pt"))  # side state removed after success


def test_a_second_run_has_nothing_to_do_and_the_report_builds(done):
    assert "Nothing to be done" in snakemake(done, "-n").stdout
    snakemake(done, "--report", "report.html")
    html = (done / "report.html").read_text(errors="replace")
    assert "accuracy_vs_sparsity" in html and "One-shot pruning" in html


def test_lint_is_clean(done):
    proc = snakemake(done, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_editing_one_sparsity_plans_only_its_jobs_and_the_summaries(done):
    config = tiny_config()
    config["oneshot"]["experiments"][0]["sparsities"] = [0.5, 0.8]  # 0.9 -> 0.8
    edited = write_config(done / "edited.yaml", config)
    out = snakemake(done, "-n", "--configfile", str(edited)).stdout
    assert planned_jobs(out) == {
        "prune_finetune_oneshot": 4,
        "evaluate_oneshot": 4,  # 2 scopes x 2 seeds, all at 0.8
        "oneshot_records": 1,
        "oneshot_table": 1,
        "oneshot_figure": 1,
        "all": 1,
    }
    sparsities = set(re.findall(r"sparsity=([0-9.]+)", out))
    assert sparsities == {"0.8"}


def test_editing_plotting_code_reruns_only_the_figure(done):
    figures = done / "lib/sparselab/report/figures.py"
    original = figures.read_text()
    try:
        figures.write_text(original + "\n# a cosmetic edit\n")
        assert planned_jobs(snakemake(done, "-n").stdout) == {"oneshot_figure": 1, "all": 1}
    finally:
        figures.write_text(original)


def test_editing_a_plotting_parameter_reruns_only_the_figure(done):
    config = tiny_config()
    config["oneshot"]["title"] = "A new title"  # a params: entry of oneshot_figure only
    edited = write_config(done / "retitled.yaml", config)
    out = snakemake(done, "-n", "--configfile", str(edited)).stdout
    assert planned_jobs(out) == {"oneshot_figure": 1, "all": 1}
    assert "Params have changed since last execution" in out


def test_editing_a_training_hyperparameter_reruns_exactly_what_depends_on_it(done):
    config = tiny_config()
    config["recipes"]["finetune"]["optimizer"]["lr"] = 0.02  # finetuning only: the dense runs stay
    edited = write_config(done / "finetune_lr.yaml", config)
    assert planned_jobs(snakemake(done, "-n", "--configfile", str(edited)).stdout) == {
        "prune_finetune_oneshot": 8,
        "evaluate_oneshot": 8,  # the pruned runs; the 2 dense evaluations stay
        "oneshot_records": 1,
        "oneshot_table": 1,
        "oneshot_figure": 1,
        "all": 1,
    }
    config = tiny_config()
    config["recipes"]["dense"]["optimizer"]["lr"] = 0.04  # the dense runs: everything below them
    edited = write_config(done / "dense_lr.yaml", config)
    assert planned_jobs(snakemake(done, "-n", "--configfile", str(edited)).stdout) == {
        "train_dense": 2,
        "prune_finetune_oneshot": 8,
        "evaluate_oneshot": 10,
        "oneshot_records": 1,
        "oneshot_table": 1,
        "oneshot_figure": 1,
        "all": 1,
    }


def test_editing_the_engine_reruns_every_training_job_and_what_follows(done):
    engine = done / "lib/sparselab/train/engine.py"
    original = engine.read_text()
    try:
        engine.write_text(original + "\n# an edit\n")
        assert planned_jobs(snakemake(done, "-n").stdout) == {
            "train_dense": 2,
            "prune_finetune_oneshot": 8,
            "evaluate_oneshot": 10,
            "oneshot_records": 1,
            "oneshot_table": 1,
            "oneshot_figure": 1,
            "all": 1,
        }
    finally:
        engine.write_text(original)


def test_a_wrong_key_fails_at_parse_time_with_its_path(done):
    config = tiny_config()
    config["recipes"]["finetune"]["optimizer"]["learning_rate"] = 0.1
    bad = write_config(done / "bad.yaml", config)
    proc = snakemake(done, "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert (
        "recipes.finetune.optimizer: Additional properties are not allowed ('learning_rate'"
        in proc.stdout + proc.stderr
    )


def test_a_wrong_type_fails_at_parse_time_with_its_path(done):
    config = tiny_config()
    config["oneshot"]["experiments"][0]["seeds"] = ["zero"]
    bad = write_config(done / "bad_type.yaml", config)
    proc = snakemake(done, "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "oneshot.experiments[0].seeds[0]: 'zero' is not of type 'integer'" in proc.stdout + proc.stderr


def test_a_missing_root_stops_a_real_run_before_any_job(tmp_path):
    wf = copy_workflow(tmp_path / "repo")
    config = tiny_config()
    config["datasets"]["cifar"] = {"source": "cifar10", "root": str(tmp_path / "no-cifar")}
    config["models"]["resnet"] = {"arch": "cifar_resnet20"}
    config["oneshot"]["experiments"].append(
        {
            "dataset": "cifar",
            "model": "resnet",
            "train_recipe": "dense",
            "finetune_recipe": "finetune",
            "sparsities": [0.5],
        }
    )
    write_config(wf / "config.yaml", config)
    plan = snakemake(wf, "-n")  # planning works without the data, with a warning
    assert "WARNING (a real run stops here): datasets.cifar.root" in plan.stdout + plan.stderr
    proc = snakemake(wf, "--cores", "1", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "datasets.cifar.root" in output and "cifar-10-batches-py/" in output and "expected layout" in output
    assert not (wf / "results").exists()  # nothing ran, nothing lost


def cifar_only_config(root: Path) -> dict:
    """One CIFAR experiment on ``root`` (fakes: verify_checksums off), nothing else to run first."""
    config = tiny_config()
    config["datasets"] = {"mycifar": {"source": "cifar10", "root": str(root), "verify_checksums": False}}
    config["models"] = {"resnet": {"arch": "cifar_resnet20"}}
    config["oneshot"]["experiments"] = [
        {
            "dataset": "mycifar",
            "model": "resnet",
            "train_recipe": "dense",
            "finetune_recipe": "finetune",
            "sparsities": [0.5],
        }
    ]
    return config


def test_a_garbage_root_stops_a_real_run_before_any_job(tmp_path):
    from fakedata import write_fake_cifar10

    write_fake_cifar10(tmp_path / "cifar")
    (tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"<html>404 Not Found</html>\n" * 20)
    wf = copy_workflow(tmp_path / "repo")
    write_config(wf / "config.yaml", cifar_only_config(tmp_path / "cifar"))
    plan = snakemake(wf, "-n")
    assert "WARNING (a real run stops here): datasets.mycifar.root" in plan.stdout + plan.stderr
    proc = snakemake(wf, "--cores", "1", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "datasets.mycifar.root" in output and "data_batch_3" in output, output[-3000:]
    assert not (wf / "results").exists()  # nothing ran


def test_a_pickle_payload_never_runs_in_a_real_run_and_the_error_names_the_key(tmp_path):
    from fakedata import write_malicious_cifar

    marker = tmp_path / "pwned"
    write_malicious_cifar(tmp_path / "cifar", marker, file="data_batch_2")  # passes the cheap start-up check
    wf = copy_workflow(tmp_path / "repo")
    write_config(wf / "config.yaml", cifar_only_config(tmp_path / "cifar"))
    proc = snakemake(wf, "--cores", "1", "--show-failed-logs", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not marker.exists()
    assert "datasets.mycifar.root" in output and "posix.system" in output and "data_batch_2" in output, output[-3000:]
    assert "datasets.<cifar10>" not in output, output[-3000:]


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_paper_config_plans_without_its_data(config, tmp_path):
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(config))
    jobs = planned_jobs(proc.stdout)
    assert jobs.get("all") == 1 and sum(jobs.values()) > 10
    assert "a real run stops here" in proc.stdout + proc.stderr  # its datasets are not on this machine


def test_all_paper_configs_plan_together_in_one_process_as_separately(tmp_path):
    """`python -m sparselab plan` gives every config the plan its own `snakemake -n` gives."""
    configs = sorted((REPO / "configs").glob("*.yaml"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparselab",
            "plan",
            *map(str, configs),
            "--snakemake-args",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sections = proc.stdout.split("== ")[1:]
    assert len(sections) == len(configs)
    for config, section in zip(configs, sections):
        assert section.startswith(str(config))
        separate = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", str(config)).stdout)
        assert planned_jobs(section) == separate, config.name
    assert f"{len(configs)} configs, " in proc.stdout
