"""``python -m sparselab``: outputs never overwrite an input or a workflow's results, checkpoints are
verified, user errors are one line (exit 2), and training uses the pipeline's thread count."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_snakemake, tiny_config, write_config
from safetensors.torch import load_file

from sparselab.__main__ import main as cli
from sparselab.config import DataHparams
from sparselab.io.checkpoint import CheckpointError, read_meta, sidecar_path
from sparselab.metrics.checkpoint_eval import evaluate_checkpoint
from sparselab.models.checkpoint import load_checkpoint, save_checkpoint
from sparselab.models.spec import ArchSpec
from sparselab.train.divergence import DivergenceError

SPEC = ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [8]})


def make_checkpoint(path: Path, spec: ArchSpec = SPEC) -> Path:
    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, spec.build(), spec, meta={"method": "test", "metrics": {"test_top1": 0.5}})
    return path


def make_config(path: Path, threads: int | None = None) -> Path:
    config = tiny_config()
    config["datasets"]["gratings"] = {"source": "gratings"}  # 6 classes, 1x8x8
    config["models"]["tiny"] = {"arch": "lenet300_100", "kwargs": {"hidden": [8]}}
    config["recipes"]["one"] = {"epochs": 1, "batch_size": 64}
    if threads is not None:
        config["resources"] = {"threads": threads}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_config(path, config)


def error_line(capsys: pytest.CaptureFixture) -> str:
    """The one line a user error prints (no traceback, nothing else)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def state(path: Path) -> tuple[bytes, bytes]:
    return path.read_bytes(), sidecar_path(path).read_bytes()


# ---------------------------------------------------------------- outputs never clobbered
@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_prune_refuses_to_overwrite_its_input(tmp_path, capsys, spelling):
    src = make_checkpoint(tmp_path / "dense" / "model.safetensors")
    before = state(src)
    if spelling == "same":
        out = src
    elif spelling == "dotdot":
        out = tmp_path / "dense" / ".." / "dense" / "model.safetensors"
    elif spelling == "symlink":
        (tmp_path / "link").symlink_to(tmp_path / "dense", target_is_directory=True)
        out = tmp_path / "link" / "model.safetensors"
    else:
        out = tmp_path / "dense" / "hard.safetensors"
        os.link(src, out)
    assert cli(["prune", str(src), str(out), "--sparsity", "0.5"]) == 2
    line = error_line(capsys)
    assert str(out) in line and "input" in line
    assert state(src) == before


def test_train_refuses_to_overwrite_its_config(tmp_path, capsys):
    config = make_config(tmp_path / "run" / "hparams.json")  # YAML is JSON's superset: any name works
    before = config.read_bytes()
    args = [
        "train",
        str(config),
        "--dataset",
        "digits",
        "--model",
        "tiny",
        "--recipe",
        "one",
        "--out",
        str(tmp_path / "run"),
    ]
    assert cli(args) == 2
    assert "hparams.json" in error_line(capsys)
    assert config.read_bytes() == before and not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("marker", ["Snakefile", ".snakemake"])
def test_writing_into_a_workflows_results_needs_force(tmp_path, capsys, marker):
    """A checkout (Snakefile) or a Snakemake working directory (.snakemake/) owns its results/."""
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / marker).mkdir() if marker.startswith(".") else (wf / marker).touch()
    src = make_checkpoint(wf / "results" / "train" / "digits" / "model.safetensors")
    out = wf / "results" / "oneshot" / "pruned.safetensors"
    assert cli(["prune", str(src), str(out), "--sparsity", "0.5"]) == 2
    line = error_line(capsys)
    assert "--force" in line and str(wf / "results") in line
    assert not out.exists() and not sidecar_path(out).exists()
    assert cli(["prune", str(src), str(out), "--sparsity", "0.5", "--force"]) == 0
    assert load_checkpoint(out).mask is not None
    # reading from results/ is fine; so is a results/ directory that no workflow owns
    assert cli(["prune", str(src), str(tmp_path / "runs" / "p.safetensors"), "--sparsity", "0.5"]) == 0
    plain = make_checkpoint(tmp_path / "mine" / "results" / "a.safetensors")
    assert cli(["prune", str(plain), str(plain.with_name("b.safetensors")), "--sparsity", "0.5"]) == 0


def test_train_refuses_the_checkouts_results_without_force(tmp_path, capsys, monkeypatch):
    import sparselab.train.run

    def refuse(*args, **kwargs):
        raise AssertionError("the checkout's results/ would have been written")

    monkeypatch.setattr(sparselab.train.run, "run_training", refuse)
    config = make_config(tmp_path / "config.yaml")
    out = REPO / "results" / "train" / "digits" / "tiny" / "one" / "seed0"
    before = out.exists()
    args = ["train", str(config), "--dataset", "digits", "--model", "tiny", "--recipe", "one", "--out", str(out)]
    assert cli(args) == 2
    assert "--force" in error_line(capsys)
    assert out.exists() == before


# ---------------------------------------------------------------- evaluate: the dataset must fit
def test_evaluate_refuses_a_dataset_with_other_classes(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    assert cli(["evaluate", str(ckpt), str(make_config(tmp_path / "config.yaml")), "--dataset", "gratings"]) == 2
    line = error_line(capsys)
    assert "10 classes" in line and "6 classes" in line and "gratings" in line


def test_evaluate_refuses_a_dataset_with_another_input_shape(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", ArchSpec("lenet300_100", 10, (1, 16, 16), {"hidden": [8]}))
    assert cli(["evaluate", str(ckpt), str(make_config(tmp_path / "config.yaml")), "--dataset", "digits"]) == 2
    line = error_line(capsys)
    assert "(1, 16, 16)" in line and "(1, 8, 8)" in line


def test_the_pipelines_evaluation_refuses_the_same_mismatch(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"10 classes .* 'gratings' has 6 classes"):
        evaluate_checkpoint(ckpt, DataHparams(source="gratings"), tmp_path / "eval.json")
    assert not (tmp_path / "eval.json").exists()


# ---------------------------------------------------------------- info and load verify
def test_sidecar_records_the_tensor_files_size(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    assert read_meta(ckpt)["tensors_bytes"] == ckpt.stat().st_size


def test_info_refuses_a_truncated_checkpoint(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    size = ckpt.stat().st_size
    os.truncate(ckpt, size // 2)
    assert cli(["info", str(ckpt)]) == 2
    line = error_line(capsys)
    assert f"{size // 2} bytes" in line and f"{size}" in line
    assert capsys.readouterr().out == ""
    with pytest.raises(CheckpointError, match=f"{size // 2} bytes"):
        load_checkpoint(ckpt)


def test_info_refuses_edited_tensors(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    assert cli(["info", str(ckpt)]) == 2
    assert "SHA-256" in error_line(capsys)


def test_a_sidecar_without_hash_is_an_error_unless_verification_is_off(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    meta = read_meta(ckpt)
    del meta["tensors_sha256"]
    sidecar_path(ckpt).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="tensors_sha256.*verify=False"):
        load_checkpoint(ckpt)
    assert load_checkpoint(ckpt, verify=False).spec == SPEC
    assert cli(["info", str(ckpt)]) == 2
    assert "--no-verify" in error_line(capsys)
    assert cli(["info", str(ckpt), "--no-verify"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == {"test_top1": 0.5}
    assert cli(["prune", str(ckpt), str(tmp_path / "p.safetensors"), "--sparsity", "0.5"]) == 2
    assert "--no-verify" in error_line(capsys)
    assert cli(["prune", str(ckpt), str(tmp_path / "p.safetensors"), "--sparsity", "0.5", "--no-verify"]) == 0


# ---------------------------------------------------------------- user errors: one line, exit 2
def train_args(config: Path | str, out: Path, **names: str) -> list[str]:
    picked = {"dataset": "digits", "model": "tiny", "recipe": "one", **names}
    return ["train", str(config), *(f"--{k}={v}" for k, v in picked.items()), "--out", str(out)]


def test_missing_config_file(tmp_path, capsys):
    assert cli(train_args(tmp_path / "nope.yaml", tmp_path / "out")) == 2
    line = error_line(capsys)
    assert str(tmp_path / "nope.yaml") in line and "no such" in line


def test_yaml_syntax_error_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("compute:\n  device: cpu\ndatasets:\n  digits: {source: digits\nmodels: {}\n")
    assert cli(train_args(bad, tmp_path / "out")) == 2
    line = error_line(capsys)
    assert str(bad) in line and "line 5" in line  # where the unclosed mapping of line 4 ran into "models:"


@pytest.mark.parametrize("option", ["dataset", "model", "recipe"])
def test_unknown_names(tmp_path, capsys, option):
    config = make_config(tmp_path / "config.yaml")
    assert cli(train_args(config, tmp_path / "out", **{option: "nosuch"})) == 2
    line = error_line(capsys)
    assert line.startswith(f"error: --{option} nosuch:") and str(config) in line


@pytest.mark.parametrize("command", ["info", "pathnorm", "prune", "evaluate"])
def test_missing_checkpoint(tmp_path, capsys, command):
    missing = str(tmp_path / "nope.safetensors")
    extra = {
        "prune": [str(tmp_path / "p.safetensors"), "--sparsity", "0.5"],
        "evaluate": [str(make_config(tmp_path / "config.yaml")), "--dataset", "digits"],
    }.get(command, [])
    assert cli([command, missing, *extra]) == 2
    line = error_line(capsys)
    assert missing in line and "no such checkpoint" in line


def test_input_shape_needs_three_numbers(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    with pytest.raises(SystemExit) as exit_:
        cli(["pathnorm", str(ckpt), "--input-shape", "8", "8"])
    assert exit_.value.code == 2
    assert "--input-shape" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [["3", "32", "32"], ["1", "16", "16"]])
def test_input_shape_must_fit_the_checkpoint(tmp_path, capsys, shape):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    assert cli(["pathnorm", str(ckpt), "--q", "1", "--input-shape", *shape]) == 2
    line = error_line(capsys)
    assert "--input-shape " + " ".join(shape) in line and "1 8 8" in line


def test_another_resolution_is_fine_where_the_model_takes_it(tmp_path, capsys):
    """Fully convolutional nets (global pooling) have path-norms at any resolution."""
    spec = ArchSpec("cifar_resnet20", 10, (3, 8, 8), {"width": 4})
    ckpt = make_checkpoint(tmp_path / "m.safetensors", spec)
    assert cli(["pathnorm", str(ckpt), "--q", "1", "--input-shape", "3", "16", "16"]) == 0
    assert cli(["pathnorm", str(ckpt), "--q", "1", "--input-shape", "1", "16", "16"]) == 2
    assert "3 8 8" in error_line(capsys)


def test_divergence_is_one_line_and_non_zero(tmp_path, capsys, monkeypatch):
    import sparselab.train.run

    def diverge(*args, **kwargs):
        raise DivergenceError("run x: non-finite loss at epoch 1, step 3")

    monkeypatch.setattr(sparselab.train.run, "run_training", diverge)
    assert cli(train_args(make_config(tmp_path / "config.yaml"), tmp_path / "out")) == 1
    assert "non-finite loss at epoch 1, step 3" in error_line(capsys)


def test_gpu_hours_of_a_missing_config(tmp_path, capsys):
    assert cli(["gpu-hours", str(tmp_path / "nope.yaml")]) == 2
    assert str(tmp_path / "nope.yaml") in error_line(capsys)


def test_a_user_error_prints_no_traceback_from_the_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sparselab", *train_args(tmp_path / "nope.yaml", tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "lib")},
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr


@pytest.mark.workflow
def test_gpu_hours_works_without_the_slurm_plugin(tmp_path, capsys):
    config = tiny_config()
    config["resources"] = {"gpus": 2, "epoch_minutes": {"digits": 0.5}}
    cf = write_config(tmp_path / "config.yaml", config)
    assert cli(["gpu-hours", str(cf)]) == 0
    # 2 x 12 + 8 x 3 epochs x 0.5 min x 2 GPUs (= 48 min) + 10 evaluations of 0.5 min on one GPU (= 5 min);
    # limits: 2 x 14 + 8 x 8 min x 2 GPUs + 10 x 6 min = 244 min
    # 24 jobs, the reproduction table among them (no GPU)
    assert f"| `{cf}` | 24 | 20 | 1 | 4 |" in capsys.readouterr().out


# ---------------------------------------------------------------- same config, same model
@pytest.fixture()
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_cli_train_takes_the_configs_thread_count(tmp_path, monkeypatch, restore_threads):
    import sparselab.train.run

    seen = []

    class Result:
        resumed_from_epoch, final = 0, {}

    def fake(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return Result()

    monkeypatch.setattr(sparselab.train.run, "run_training", fake)
    config = make_config(tmp_path / "config.yaml", threads=3)
    assert cli(train_args(config, tmp_path / "a")) == 0
    assert cli([*train_args(config, tmp_path / "b"), "--threads", "1"]) == 0
    assert seen == [3, 1]


@pytest.mark.workflow
def test_cli_train_equals_the_pipelines_train_dense_bitwise(tmp_path):
    """Same config, same model: the pipeline's job and the CLI both train with resources.threads (1)."""
    config = tiny_config()
    config["recipes"]["dense"]["epochs"] = 2
    cf = write_config(tmp_path / "config.yaml", config)
    run_dir = "results/train/digits/lenet/dense/seed0"
    (tmp_path / "wf").mkdir()
    run_snakemake(tmp_path / "wf", f"{run_dir}/model.safetensors", "--cores", "2", "--configfile", str(cf))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # torch's default: every core
    env["PYTHONPATH"] = str(REPO / "lib")
    cmd = [
        sys.executable,
        "-m",
        "sparselab",
        "train",
        str(cf),
        "--dataset",
        "digits",
        "--model",
        "lenet",
        "--recipe",
        "dense",
        "--seed",
        "0",
        "--out",
        str(tmp_path / "cli"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pipeline = load_file(str(tmp_path / "wf" / run_dir / "model.safetensors"))
    mine = load_file(str(tmp_path / "cli" / "model.safetensors"))
    assert pipeline.keys() == mine.keys()
    for key in pipeline:
        assert torch.equal(pipeline[key], mine[key]), key

    def losses(path: Path) -> list[str]:
        return [row["train_loss"] for row in csv.DictReader(open(path, newline=""))]

    assert losses(tmp_path / "wf" / run_dir / "metrics.csv") == losses(tmp_path / "cli" / "metrics.csv")
