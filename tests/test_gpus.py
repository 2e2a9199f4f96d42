"""Local GPU leases: concurrent jobs get disjoint devices; a killed job frees its devices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_snakemake, tiny_config, write_config

from sparselab import gpus

HOLDER = """
import os, sys, time
sys.path.insert(0, {lib!r})
from sparselab import gpus
ids = gpus.assign_devices({count})
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep({hold})
"""


@pytest.fixture()
def pool(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSELAB_GPUS", "0,1,2")
    monkeypatch.setenv("SPARSELAB_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("SLURM_STEP_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield
    gpus.release_all()


def holder(count: int, hold: float) -> subprocess.Popen:
    code = HOLDER.format(lib=str(REPO / "lib"), count=count, hold=hold)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ))


def test_leases_are_disjoint_and_released(pool):
    assert gpus.lease(2) == ["0", "1"]
    assert gpus.lease(1) == ["2"]
    with pytest.raises(TimeoutError, match="no 1 free GPUs"):
        gpus.lease(1, wait_s=0.2, poll_s=0.05)
    gpus.release_all()
    assert gpus.lease(3) == ["0", "1", "2"]


def test_asking_for_more_than_the_pool_names_the_fix(pool):
    with pytest.raises(RuntimeError, match="resources.gpus"):
        gpus.lease(4)


def test_concurrent_jobs_see_only_their_own_devices_and_a_waiting_job_gets_one_when_freed(pool):
    first = [holder(1, 60.0) for _ in range(3)]  # held until killed below
    seen = [p.stdout.readline().strip() for p in first]
    assert sorted(seen) == ["0", "1", "2"]  # three jobs at once: three different devices
    late = holder(1, 0.0)
    time.sleep(0.5)
    assert late.poll() is None  # all three held: it waits
    first[1].send_signal(signal.SIGKILL)  # a killed job frees its device with it
    freed = seen[1]
    first[1].wait()
    assert late.stdout.readline().strip() == freed
    late.wait(timeout=30)
    for p in first:
        p.kill()
        p.wait()


def test_inside_a_slurm_step_nothing_is_leased(pool, monkeypatch):
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert gpus.assign_devices(2) is None


@pytest.mark.workflow
def test_workflow_jobs_lease_from_the_pool(tmp_path, monkeypatch):
    """gpus: 1 with a pool of two (no real devices: torch falls back to the CPU): every training
    and evaluation job logs the device it leased, and runs with --resources gpu=2."""
    config = tiny_config()
    config["compute"] = {"device": "auto"}
    config["resources"] = {"gpus": 1}
    config["recipes"]["dense"]["epochs"] = 2
    config["oneshot"]["experiments"][0].update(scopes=["global"], sparsities=[0.5], seeds=[0, 1])
    write_config(tmp_path / "config.yaml", config)
    monkeypatch.setenv("SPARSELAB_GPUS", "4,6")
    monkeypatch.setenv("SPARSELAB_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    run_snakemake(tmp_path, "--cores", "2", "--resources", "gpu=2", timeout=600)
    logs = sorted((tmp_path / "logs/train").rglob("*.log")) + sorted(
        (tmp_path / "logs/oneshot/evaluate").rglob("*.log")
    )
    assert len(logs) == 2 + 4  # 2 dense trainings, 2 x (dense + pruned) evaluations
    for log in logs:
        text = log.read_text()
        assert "leased GPU(s) 4" in text or "leased GPU(s) 6" in text, log
