"""Shared fixtures: the repository root and a way to run Snakemake on a config in a temp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# The device of the device-sensitive tests: ``pytest --device cuda`` runs them on the machine's GPU
# (CPU by default). Set before any test module is imported (pytest_configure), so modules build
# their ComputeHparams from it: ``ComputeHparams(device=DEVICE)``.
DEVICE = "cpu"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device", choices=("cpu", "cuda"), default="cpu", help="device of the tests marked 'device' (default: cpu)"
    )


def pytest_configure(config: pytest.Config) -> None:
    global DEVICE
    DEVICE = config.getoption("--device")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--device cuda`` on a machine without CUDA, the device tests skip (the rest run)."""
    if DEVICE != "cuda":
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="--device cuda: no CUDA device on this machine")
    for item in items:
        if item.get_closest_marker("device") is not None or "device" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """``snakemake --snakefile REPO/Snakefile --directory WORKDIR ARGS`` with this interpreter."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


WORKFLOW_FILES = ["Snakefile", "rules", "workflow_scripts", "lib", "schemas", "report", "envs", "profiles", "published"]


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow (Snakefile, rules, scripts, lib, ...) to run from ``dest``, as from a checkout."""
    dest.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_config() -> dict:
    """The smallest one-shot study that still exercises every rule: LeNet on digits, 2 seeds."""
    return {
        "compute": {"device": "cpu"},
        "datasets": {"digits": {"source": "digits", "val_fraction": 0.1}},
        "models": {"lenet": {"arch": "lenet300_100", "kwargs": {"hidden": [64, 32]}}},
        "recipes": {
            "dense": {
                "epochs": 12,
                "batch_size": 64,
                "optimizer": {"lr": 0.05, "nesterov": True},
                "schedule": {"kind": "cosine", "warmup_epochs": 1},
            },
            "finetune": {"epochs": 3, "batch_size": 64, "optimizer": {"lr": 0.01}, "schedule": {"kind": "cosine"}},
        },
        "oneshot": {
            "experiments": [
                {
                    "dataset": "digits",
                    "model": "lenet",
                    "train_recipe": "dense",
                    "finetune_recipe": "finetune",
                    "scopes": ["layerwise", "global"],
                    "sparsities": [0.5, 0.9],
                    "seeds": [0, 1],
                }
            ]
        },
    }


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def device():  # type: ignore[no-untyped-def]
    """The ``torch.device`` of ``--device`` (tests asking for it skip where that device is absent)."""
    import torch

    return torch.device(DEVICE)


@pytest.fixture(scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """One intra-op thread while a module runs, as a job runs by default (``resources.threads: 1``):
    many tiny ops stall in OpenMP barriers on a loaded or oversubscribed CPU (a gradient-flow test:
    4 s with 1 thread, 38 s with 2 on a shared 2-core VM; pytest-xdist workers x all cores on a GPU
    machine is worse)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every path to the network raises, so a test that reached one fails loudly."""
    import torch.hub
    import torchvision.models._api

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"download attempted: {args!r}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    # torchvision binds its own name at import (WeightsEnum.get_state_dict uses it).
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr("urllib.request.urlopen", refuse)


def sidecar_parents(checkpoint: str | os.PathLike) -> list[dict[str, str]] | None:
    """The ``parents`` a checkpoint's sidecar records (None when it has no such key)."""
    import json

    return json.loads(Path(checkpoint).with_suffix(".json").read_text()).get("parents")


def expected_parents(*parents: tuple[str, str | os.PathLike]) -> list[dict[str, str]]:
    """``parents`` naming each (role, path) with the SHA-256 of the file as it is now, hashed here
    with hashlib (not the library's hashing), so a wrong file or a stale hash fails the comparison."""
    import hashlib

    return [
        {"role": role, "path": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
        for role, path in parents
    ]
