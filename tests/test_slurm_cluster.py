"""The SLURM profile end to end: a tiny pipeline submitted through `snakemake --profile profiles/slurm`
to a one-node cluster (.ci/slurm/up.sh), with one training job that hits its time limit, is retried
with a longer one and resumes from its per-epoch state, ending bitwise equal to an uninterrupted run.

Needs a running cluster and SPARSELAB_SLURM_TEST=1 (.ci/run does both); skipped otherwise. The first
two tests only read the profiles and run everywhere.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, copy_workflow, write_config
from safetensors.torch import load_file

# CI-only settings on top of the user's profile (never edited for the test): poll after 2 s
# instead of 40, and keep every job's SLURM log so the test can read them.
CI_OVERRIDES = ["--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]
SNAKEMAKE_TIMEOUT_S = 900  # the run takes 4-6 minutes; a hung plugin ignores SIGTERM: timeout -k

# The training job: ResNet-20 (width 16) on digits for 400 epochs of 0.3-0.9 s (2-core VMs, next to
# the reference run), plus about 10 s of start-up: 2-6 minutes, longer than SLURM's shortest limit of
# 1 minute on any machine we run CI on. SLURM checks limits every 30 s (slurm.conf: OverTimeLimit=0,
# KillWait=5), so attempt 1 is stopped with TIMEOUT 60-90 s after it started. A CI-only override asks
# 1 minute for attempt 1 and 15 for the retry, so the retry always has time to finish: the rules' own
# runtimes (which grow with the attempt) cannot make attempt 1 short enough to time out yet attempt 2
# long enough for any machine speed, since SLURM limits come in whole minutes.
EPOCHS = 400
TIMEOUT_OVERRIDE = ["--set-resources", "train_dense:runtime=1 if attempt == 1 else 15"]
SEED = 3
TRAIN = "results/train/digits/resnet/long/seed3"
CONFIG = {
    "compute": {"device": "cpu", "deterministic": True},
    "resources": {"gpus": 0},
    "datasets": {"digits": {"source": "digits", "val_fraction": 0.1}},
    "models": {"resnet": {"arch": "cifar_resnet20", "kwargs": {"width": 16}}},
    "recipes": {
        "long": {
            "epochs": EPOCHS,
            "batch_size": 64,
            "optimizer": {"lr": 0.05, "nesterov": True},
            "schedule": {"kind": "cosine", "warmup_epochs": 1},
        },
        "finetune": {"epochs": 1, "batch_size": 64, "optimizer": {"lr": 0.01}, "schedule": {"kind": "cosine"}},
    },
    "oneshot": {
        "experiments": [
            {
                "dataset": "digits",
                "model": "resnet",
                "train_recipe": "long",
                "finetune_recipe": "finetune",
                "scopes": ["global"],
                "sparsities": [0.5],
                "seeds": [SEED],
            }
        ]
    },
}

# ---------------------------------------------------------------- multi-GPU (DDP) job
# One training job asking gpu=DDP_GPUS (config resources.gpus), which the training rules run as
# torchrun DDP with that many gloo processes on CPU; FAKE_GPUS=2 in .ci/slurm/up.sh makes gpu=2
# schedulable (no device behind them: torch stays on the CPU, so gloo). 0 skips the test.
DDP_GPUS = 2
DDP_CONFIG = {
    "compute": {"device": "cpu", "deterministic": True},
    "resources": {"gpus": DDP_GPUS, "runtime_base_minutes": 1},
    "datasets": {"digits": {"source": "digits", "val_fraction": 0.1}},
    "models": {"lenet": {"arch": "lenet300_100", "kwargs": {"hidden": [64, 32]}}},
    "recipes": {"dense": {"epochs": 3, "batch_size": 64, "optimizer": {"lr": 0.05}, "schedule": {"kind": "cosine"}}},
    "oneshot": {"enabled": False},
}
DDP_TARGET = "results/train/digits/lenet/dense/seed0/model.safetensors"


# ---------------------------------------------------------------- helpers
def cluster_problem() -> str | None:
    """Why the cluster tests cannot run here, or None."""
    for tool in ("sinfo", "sbatch", "sacct"):
        if shutil.which(tool) is None:
            return f"{tool} not on PATH: no SLURM client here (.ci/slurm/up.sh installs and starts one)"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld not answering (.ci/slurm/up.sh)"
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"sinfo failed: {proc.stderr.strip() or 'no nodes'} (.ci/slurm/up.sh)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return 'snakemake-executor-plugin-slurm not installed: pip install -e ".[cluster]" (.ci/run installs it)'
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    if os.environ.get("SPARSELAB_SLURM_TEST") != "1":
        pytest.skip(
            "needs a SLURM cluster: run .ci/slurm/up.sh, then SPARSELAB_SLURM_TEST=1 pytest (.ci/run does both)"
        )
    problem = cluster_problem()
    if problem:  # asked for, so a missing cluster is an error, not a skip
        pytest.fail(f"SPARSELAB_SLURM_TEST=1 but {problem}")


def snakemake_slurm(workdir: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    """`snakemake --profile profiles/slurm` from the workflow's root, as a user runs it, bounded by
    `timeout -k` (a hung executor plugin ignores SIGTERM)."""
    cmd = [
        "timeout",
        "-k",
        "10",
        str(SNAKEMAKE_TIMEOUT_S),
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "profiles/slurm",
        *CI_OVERRIDES,
        *args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=SNAKEMAKE_TIMEOUT_S + 30)
    (workdir / f"{name}.out").write_text(proc.stdout + proc.stderr)  # for a look after a failure
    return proc


def sacct_jobs(workdir: Path, since: str) -> list[dict]:
    """Every job submitted from ``workdir`` since ``since`` (allocations only, no steps), oldest first."""
    fields = ["JobIDRaw", "JobName", "State", "Comment", "Timelimit", "Elapsed", "WorkDir", "AllocTRES"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join(f + "%300" for f in fields)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
    rows = [r for r in rows if Path(r["WorkDir"]).resolve() == workdir.resolve()]
    return sorted(rows, key=lambda r: int(r["JobIDRaw"]))


def rule_of(job: dict) -> str:
    """The rule of a job from the plugin's `--comment rule_<name>_wildcards_<...>`."""
    m = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", job["Comment"])
    assert m, f"job {job['JobIDRaw']} has no rule comment: {job}"
    return m.group(1)


def local_rules() -> set[str]:
    """Rules marked `localrule: True` in rules/*.smk (plus the target rule `all`)."""
    out = {"all"}
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule |checkpoint )", smk.read_text(), flags=re.M)[1:]:
            if re.search(r"^\s+localrule:\s*True", block, flags=re.M):
                out.add(block.split()[1].rstrip(":"))
        for names in re.findall(r"^localrules:\s*(.+)$", smk.read_text(), flags=re.M):
            out.update(n.strip() for n in names.split(","))
    return out


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    table = dry_run_output.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.strip().splitlines()[2:]]
    return {rule: int(count) for rule, count in rows if rule != "total"}


def metrics_without_times(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in csv.DictReader(f)]


# ---------------------------------------------------------------- the profiles (no cluster needed)
@pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason='the SLURM profile needs the executor plugin: pip install -e ".[cluster]"',
)
def test_slurm_profile_is_not_overridden_by_the_workflow_profile(monkeypatch):
    """profiles/default is applied on top of any --profile, key by key: it must not undo retries etc."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(REPO)
    _, args = parse_args(["snakemake", "--dry-run", "--profile", "profiles/slurm"])
    assert args.executor == "slurm"
    assert args.retries >= 2
    assert args.keep_going and args.rerun_incomplete
    assert args.jobs > 1 and args.latency_wait >= 30
    assert {"runtime", "mem_mb"} <= set(args.default_resources)


def test_slurm_profile_gives_gpu_model_to_every_gpu_rule():
    """gpu_model goes to exactly the rules that declare `gpu` (elsewhere it would ask for a GPU)."""
    profile = yaml.safe_load((REPO / "profiles/slurm/profile.v9+.yaml").read_text())
    with_model = {rule for rule, res in profile["set-resources"].items() if "gpu_model" in res}
    gpu_rules = set()
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule |checkpoint )", smk.read_text(), flags=re.M)[1:]:
            if re.search(r"^\s+gpu=", block, flags=re.M):
                gpu_rules.add(block.split()[1].rstrip(":"))
    assert with_model == gpu_rules
    assert "gpu_model" not in profile["default-resources"]


# ---------------------------------------------------------------- the cluster
@pytest.mark.slurm
@pytest.mark.workflow
def test_pipeline_through_slurm_with_a_timeout_retried_and_resumed(cluster, tmp_path):
    wf = copy_workflow(tmp_path / "repo")
    write_config(wf / "config.yaml", CONFIG)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))

    # The uninterrupted reference, trained locally meanwhile (one thread; the SLURM job uses the other core).
    reference = tmp_path / "reference"
    ref_cmd = [
        sys.executable,
        "-m",
        "sparselab",
        "train",
        str(wf / "config.yaml"),
        "--dataset",
        "digits",
        "--model",
        "resnet",
        "--recipe",
        "long",
        "--seed",
        str(SEED),
        "--out",
        str(reference),
    ]
    ref_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "lib")}
    ref = subprocess.Popen(ref_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ref_env)
    try:
        plan = snakemake_slurm(wf, "dryrun", "--dry-run", "--quiet", "rules")
        assert plan.returncode == 0, plan.stdout + plan.stderr
        planned = planned_jobs(plan.stdout + plan.stderr)
        started = time.monotonic()
        proc = snakemake_slurm(wf, "run", "--verbose", *TIMEOUT_OVERRIDE)
        wall = time.monotonic() - started
        _, ref_err = ref.communicate(timeout=600)
    finally:
        if ref.poll() is None:
            ref.kill()
    log = proc.stdout + proc.stderr
    print(f"\nsnakemake --profile profiles/slurm: rc={proc.returncode} in {wall:.0f} s")
    assert proc.returncode == 0, f"rc={proc.returncode} (124/137: timed out)\n{log[-6000:]}"
    assert ref.returncode == 0, ref_err[-3000:]

    # Every non-local job went through sbatch (one sacct record each), the training job twice;
    # local rules ran here, not on the cluster.
    jobs = sacct_jobs(wf, since)
    for _ in range(10):  # slurmdbd records the last job's end asynchronously
        if all(j["State"] not in ("PENDING", "RUNNING", "COMPLETING") for j in jobs):
            break
        time.sleep(1)
        jobs = sacct_jobs(wf, since)
    for j in jobs:
        print(
            f"  sacct {j['JobIDRaw']:>4} {j['State']:<10} limit {j['Timelimit']} elapsed {j['Elapsed']} {j['Comment']}"
        )
    local = local_rules()
    expected = {rule: n for rule, n in planned.items() if rule not in local}
    retried = Counter(rule_of(j) for j in jobs)["train_dense"] - expected["train_dense"]
    assert retried == 1, "the training job was not retried exactly once"
    expected["train_dense"] += retried
    assert Counter(rule_of(j) for j in jobs) == expected
    assert {"oneshot_records", "oneshot_table", "oneshot_figure"} <= local
    assert (wf / "results/oneshot/summary/accuracy_vs_sparsity.png").exists()
    assert log.count("sbatch call:") == sum(expected.values())

    # Attempt 1 asked 1 minute and ended TIMEOUT; attempt 2 asked 15 and completed.
    train = [j for j in jobs if rule_of(j) == "train_dense"]
    assert train[0]["State"] == "TIMEOUT", (
        f"attempt 1 was not stopped by its 1-minute limit (machine too fast? raise EPOCHS): {train}"
    )
    assert [j["State"] for j in train[1:]] == ["COMPLETED"], train
    assert [j["Timelimit"] for j in train] == ["00:01:00", "00:15:00"], train
    assert all(j["State"] == "COMPLETED" for j in jobs if j not in train), jobs
    for j in train[:-1]:
        assert f"SLURM-job '{j['JobIDRaw']}' failed, SLURM status is: 'TIMEOUT'" in log

    # Each job's SLURM log (.snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log) shows that it
    # ran in its allocation: the job's snakemake (--verbose) prints its environment, SLURM_JOB_ID included.
    for j in jobs:
        (path,) = (wf / ".snakemake/slurm_logs").glob(f"rule_{rule_of(j)}/*/{j['JobIDRaw']}.log")
        assert path.parent.name in j["Comment"], (path, j)
        assert f"'SLURM_JOB_ID': '{j['JobIDRaw']}'" in path.read_text(), path
    for j in train[:-1]:
        text = next((wf / ".snakemake/slurm_logs/rule_train_dense").glob(f"*/{j['JobIDRaw']}.log")).read_text()
        assert re.search(rf"JOB {j['JobIDRaw']} ON \S+ CANCELLED AT \S+ DUE TO TIME LIMIT", text), text[-2000:]

    # Attempt 2 resumed from the state attempt 1 saved, and ended where an uninterrupted run ends.
    rule_log = (wf / "logs/train/digits/resnet/long/seed3.log").read_text()
    resumed = re.search(r"resuming from \S+ after epoch (\d+)", rule_log)
    assert resumed and 1 <= int(resumed.group(1)) < EPOCHS, rule_log[-3000:]
    print(f"  attempt 2 resumed after epoch {resumed.group(1)} of {EPOCHS}")
    a, b = load_file(str(reference / "model.safetensors")), load_file(str(wf / TRAIN / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs from the uninterrupted run"
    assert metrics_without_times(reference / "metrics.csv") == metrics_without_times(wf / TRAIN / "metrics.csv")
    assert not list((wf / ".resume").rglob("*.pt")), "resume state left behind after the run completed"


@pytest.mark.slurm
@pytest.mark.workflow
@pytest.mark.skipif(DDP_GPUS == 0, reason="multi-GPU (DDP) training job disabled: DDP_GPUS = 0")
def test_multi_gpu_training_job_through_slurm(cluster, tmp_path):
    wf = copy_workflow(tmp_path / "repo")
    write_config(wf / "config.yaml", DDP_CONFIG)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    proc = snakemake_slurm(wf, "run", "--verbose", DDP_TARGET)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"rc={proc.returncode} (124/137: timed out)\n{log[-6000:]}"
    (job,) = sacct_jobs(wf, since)
    assert rule_of(job) == "train_dense" and job["State"] == "COMPLETED", job
    assert f"gres/gpu={DDP_GPUS}" in job["AllocTRES"], job
    assert (wf / DDP_TARGET).exists()
    rule_log = next((wf / "logs/train").rglob("*.log")).read_text()
    assert f"launching {DDP_GPUS} training processes" in rule_log, rule_log
    assert f"process 0 of {DDP_GPUS} joined the gloo process group" in rule_log, rule_log  # fake GPUs: CPU
