"""A training process killed with SIGKILL resumes from its last epoch and ends bitwise identical."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, write_config
from safetensors.torch import load_file

EPOCHS = 10
CONFIG = {
    "compute": {"device": "cpu", "deterministic": True},
    "datasets": {"digits": {"source": "digits", "val_fraction": 0.1}},
    "models": {"resnet": {"arch": "cifar_resnet20", "kwargs": {"width": 8}}},
    "recipes": {
        "r": {
            "epochs": EPOCHS,
            "batch_size": 64,
            "optimizer": {"lr": 0.05, "nesterov": True},
            "schedule": {"kind": "multistep", "warmup_epochs": 1, "milestones": [6, 8]},
        }
    },
}


def start(config: Path, out: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "sparselab",
        "train",
        str(config),
        "--dataset",
        "digits",
        "--model",
        "resnet",
        "--recipe",
        "r",
        "--seed",
        "3",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "lib")}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def epochs_done(out: Path) -> int:
    try:
        with open(out / "metrics.csv", newline="") as f:
            return sum(1 for _ in csv.DictReader(f))
    except (FileNotFoundError, StopIteration):
        return 0


def finish(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    return json.loads(stdout)


def metrics_without_times(out: Path) -> list[dict]:
    rows = list(csv.DictReader(open(out / "metrics.csv", newline="")))
    return [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in rows]


@pytest.mark.workflow
def test_sigkill_then_restart_matches_an_uninterrupted_run(tmp_path):
    config = write_config(tmp_path / "config.yaml", CONFIG)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    ref_proc = start(config, reference)

    proc = start(config, killed)
    deadline = time.monotonic() + 120
    while epochs_done(killed) < 2:
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.3))  # anywhere in the next epoch, possibly mid-save
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists()
    assert (killed / ".resume" / "resume.pt").exists()

    resumed = finish(start(config, killed))
    assert resumed["resumed_from_epoch"] >= 2
    assert finish(ref_proc)["resumed_from_epoch"] is None

    a, b = load_file(str(reference / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming"
    assert metrics_without_times(reference) == metrics_without_times(killed)
    assert len(metrics_without_times(killed)) == EPOCHS
    assert not (killed / ".resume" / "resume.pt").exists()  # cleaned up once the run completed
