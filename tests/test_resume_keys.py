"""Resume state is keyed by what a job computes: its config (the rule's params), its code digest and
its input files. State of another key is discarded with a log line, never resumed; a job that
succeeds leaves no state behind (issue 14, point 1)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake.iocontainers import InputFiles, Log, Params, ResourceList, Wildcards

from sparselab.jobs import snakemake_job


def fake_job(
    tmp_path: Path, *, code: str = "60 files, sha256 aaaa", lr: float = 0.1, upstream: bytes = b"dense"
) -> SimpleNamespace:
    """The ``snakemake`` object a workflow script sees, for a job with a resume directory."""
    upstream_file = tmp_path / "results" / "dense.safetensors"
    upstream_file.parent.mkdir(parents=True, exist_ok=True)
    upstream_file.write_bytes(upstream)
    state_dir = tmp_path / ".resume" / "results" / "run" / "model"
    return SimpleNamespace(
        input=InputFiles(fromdict={"dense": str(upstream_file)}),
        params=Params(fromdict={"code": code, "recipe": {"lr": lr, "epochs": 3}, "state_dir": str(state_dir)}),
        log=Log(fromdict={"log": str(tmp_path / "job.log")}),
        config={"compute": {"device": "cpu"}},
        threads=1,
        rule="train_dense",
        wildcards=Wildcards(fromdict={"seed": "0"}),
        resources=ResourceList(fromdict={}),
        state_dir=state_dir,
        log_file=tmp_path / "job.log",
    )


def interrupted(job: SimpleNamespace) -> None:
    """A job that leaves resume state behind and fails (as a killed or timed-out job does)."""
    with pytest.raises(RuntimeError, match="killed"):
        with snakemake_job(job):
            job.state_dir.mkdir(parents=True, exist_ok=True)
            (job.state_dir / "resume.pt").write_bytes(b"epoch 2")
            (job.state_dir / "round3.safetensors").write_bytes(b"round 3")
            raise RuntimeError("killed")


def state_files(job: SimpleNamespace) -> list[str]:
    return sorted(p.name for p in job.state_dir.rglob("*") if p.is_file()) if job.state_dir.exists() else []


@pytest.fixture(autouse=True)
def _restore_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_state_of_the_same_job_is_resumed(tmp_path: Path) -> None:
    interrupted(fake_job(tmp_path))
    job = fake_job(tmp_path)
    with snakemake_job(job):
        assert {"resume.pt", "round3.safetensors"} <= set(state_files(job))


@pytest.mark.parametrize(
    "change, reason",
    [({"code": "60 files, sha256 bbbb"}, "code"), ({"lr": 0.2}, "config"), ({"upstream": b"retrained"}, "input")],
)
def test_state_of_other_code_config_or_inputs_is_discarded_with_a_log_line(
    tmp_path: Path, change: dict, reason: str
) -> None:
    interrupted(fake_job(tmp_path))
    job = fake_job(tmp_path, **change)
    with snakemake_job(job):
        assert "resume.pt" not in state_files(job) and "round3.safetensors" not in state_files(job)
    log = job.log_file.read_text()
    assert "discarding resume state" in log and str(job.state_dir) in log and reason in log


def test_a_job_that_succeeds_leaves_no_state(tmp_path: Path) -> None:
    job = fake_job(tmp_path)
    with snakemake_job(job):
        job.state_dir.mkdir(parents=True, exist_ok=True)
        (job.state_dir / "round1.safetensors").write_bytes(b"round 1")
    assert not job.state_dir.exists()


def test_the_key_is_stored_beside_the_state(tmp_path: Path) -> None:
    interrupted(fake_job(tmp_path))
    job = fake_job(tmp_path)
    import json

    key = json.loads((job.state_dir / "KEY.json").read_text())
    assert key["code"] == "60 files, sha256 aaaa" and set(key) == {"code", "config", "inputs"}


def test_cli_train_discards_state_of_other_code_and_leaves_none(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``python -m sparselab train`` keys its --state-dir like the pipeline's jobs: state written by
    other code is discarded (not loaded), and a finished run leaves no state behind."""
    import json

    from test_cli import make_config

    from sparselab.__main__ import main as cli

    config = make_config(tmp_path / "config.yaml")
    out, state = tmp_path / "run", tmp_path / "run" / ".resume"
    state.mkdir(parents=True)
    (state / "KEY.json").write_text(json.dumps({"code": "1 files, sha256 0000", "config": "x", "inputs": {}}))
    (state / "resume.pt").write_bytes(b"not a training state")  # loading it would fail
    args = ["train", str(config), "--dataset", "digits", "--model", "tiny", "--recipe", "one", "--out", str(out)]
    assert cli(args) == 0  # the CLI logs to stderr
    assert "discarding resume state" in capsys.readouterr().err and (out / "model.safetensors").exists()
    assert not state.exists()
