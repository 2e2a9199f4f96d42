"""Divergence fails loudly (issue 14, point 3): a non-finite loss or weight stops the run with an
error naming the run, epoch and step, and nothing is written as if the run had finished."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from sparselab.__main__ import main as cli
from sparselab.config import ComputeHparams, DataHparams, ModelHparams, SeedHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.io.checkpoint import sidecar_path
from sparselab.io.hashing import file_sha256
from sparselab.models.checkpoint import save_checkpoint
from sparselab.models.spec import ArchSpec
from sparselab.train.callbacks import Callback
from sparselab.train.divergence import DivergenceError
from sparselab.train.engine import train
from sparselab.train.run import RunFiles, build_seeded, run_training
from sparselab.train.state import TrainState
from sparselab.transfer.linear import logistic_regression, train_linear_head

CPU = ComputeHparams(device="cpu", progress="lines")
SEEDS = SeedHparams.for_replicate(0)
SPEC = ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [32, 16]})
BATCH = 64


@pytest.fixture(scope="module")
def digits():
    return build_splits(DataHparams(val_fraction=0.1))


def recipe(lr: float = 0.05, epochs: int = 3) -> TrainHparams:
    return TrainHparams.from_dict(
        {"epochs": epochs, "batch_size": BATCH, "optimizer": {"lr": lr}, "schedule": {"kind": "constant"}}
    )


class Poison(Callback):
    """Sets a weight to NaN after optimizer step ``at``: a diverging update at a known step."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, ctx) -> None:
        if ctx.step == self.at:
            with torch.no_grad():
                weight = next(ctx.model.parameters())  # by index: channels_last weights (CUDA) cannot be viewed
                weight[(0,) * weight.dim()] = math.nan


def test_poison_writes_a_nan_into_a_channels_last_weight() -> None:
    """The helper works on the weights of a CUDA run (channels_last), checked here on CPU."""
    model = nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    ctx = type("Ctx", (), {"step": 2, "model": model})()
    Poison(2).on_step_end(ctx)
    assert math.isnan(float(model.weight.detach()[0, 0, 0, 0])) and int(torch.isnan(model.weight.detach()).sum()) == 1


def steps_per_epoch(digits) -> int:
    return math.ceil(len(digits.train) / BATCH)


# ----------------------------------------------------------------------------- the engine


def test_a_huge_learning_rate_raises_naming_run_epoch_and_step(digits, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DivergenceError, match=r"run 'my-run' diverged at epoch 1, step \d+ "):
        train(
            build_seeded(SPEC, SEEDS.init),
            digits,
            recipe(lr=1e6),
            seeds=SEEDS,
            compute=CPU,
            run_name="my-run",
            state_dir=run / ".resume",
            metrics_csv=run / "metrics.csv",
        )
    assert not (run / "metrics.csv").exists()
    assert not (run / ".resume" / "resume.pt").exists()


def test_the_first_non_finite_loss_is_reported_and_the_diverged_epoch_is_never_saved(digits, tmp_path):
    n = steps_per_epoch(digits)
    at = n + 5  # NaN weights after the 5th step of epoch 2: the 6th step's loss is NaN
    with pytest.raises(DivergenceError) as err:
        train(
            build_seeded(SPEC, SEEDS.init),
            digits,
            recipe(),
            seeds=SEEDS,
            compute=CPU,
            callbacks=[Poison(at)],
            state_dir=tmp_path / ".resume",
            metrics_csv=tmp_path / "metrics.csv",
            run_name="runs/x",
        )
    message = str(err.value)
    assert f"run 'runs/x' diverged at epoch 2, step {at + 1} (step 6 of {n} in the epoch)" in message
    assert "\n" not in message
    saved = TrainState.load(tmp_path / ".resume" / "resume.pt")
    assert saved.epoch == 1 and saved.step == n  # the last good epoch, never the diverged one
    assert all(torch.isfinite(t).all() for t in saved.model.values() if t.is_floating_point())
    assert not (tmp_path / "metrics.csv").exists()  # no per-epoch record of a run that cannot finish


def test_non_finite_weights_at_the_end_of_an_epoch_are_caught_even_with_a_finite_loss(digits, tmp_path):
    n = steps_per_epoch(digits)
    with pytest.raises(
        DivergenceError,
        match=rf"run 'w' diverged at epoch 1: weights became non-finite after step {n} "
        r"\(1\.weight: 1 of 2048 entries",
    ):
        train(
            build_seeded(SPEC, SEEDS.init),
            digits,
            recipe(),
            seeds=SEEDS,
            compute=CPU,
            callbacks=[Poison(n)],
            state_dir=tmp_path,
            run_name="w",
        )
    assert not (tmp_path / "resume.pt").exists()


def test_the_run_is_named_by_its_state_directory_by_default(digits, tmp_path):
    with pytest.raises(DivergenceError, match=rf"run '{re.escape(str(tmp_path / 'st'))}' diverged at epoch 1"):
        train(
            build_seeded(SPEC, SEEDS.init), digits, recipe(lr=1e6), seeds=SEEDS, compute=CPU, state_dir=tmp_path / "st"
        )


# ----------------------------------------------------------------------------- run_training and the CLI


def test_run_training_with_lr_1e6_writes_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(DivergenceError, match=rf"run '{re.escape(str(out))}' diverged at epoch 1, step \d+"):
        run_training(
            RunFiles.in_directory(out),
            data=DataHparams(val_fraction=0.1),
            model=ModelHparams(arch="lenet300_100", kwargs={"hidden": [32, 16]}),
            recipe=recipe(lr=1e6, epochs=2),
            seed=0,
            compute=CPU,
        )
    leftovers = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert leftovers == []


def nan_recipe_config(tmp_path: Path) -> Path:
    config = {
        "compute": {"device": "cpu"},
        "datasets": {"digits": {"source": "digits", "val_fraction": 0.1}},
        "models": {"lenet": {"arch": "lenet300_100", "kwargs": {"hidden": [32, 16]}}},
        "recipes": {
            "boom": {"epochs": 2, "batch_size": 64, "optimizer": {"lr": 1.0e6}, "schedule": {"kind": "constant"}}
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_train_of_a_diverging_recipe_exits_non_zero_with_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli(
        [
            "train",
            str(nan_recipe_config(tmp_path)),
            "--dataset",
            "digits",
            "--model",
            "lenet",
            "--recipe",
            "boom",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: run '{out}' diverged at epoch 1, step ")
    assert captured.out == ""
    state = out / ".resume"  # the resume state (its key, no epoch) is not an output
    assert not [p for p in out.rglob("*") if p.is_file() and state not in p.parents]


# ----------------------------------------------------------------------------- linear heads


def features(n: int = 200, d: int = 16, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g) * 3, torch.randint(0, classes, (n,), generator=g)


def test_a_diverging_sgd_linear_head_raises_naming_epoch_and_step():
    data = features()
    with pytest.raises(
        DivergenceError,
        match=r"linear head 'h' diverged at epoch [1-3](, step \d+ \(step \d+ of 4 in the "
        r"epoch\): the loss|: weights became non-finite)",
    ):
        train_linear_head(data, data, 4, epochs=3, lr=1e8, batch_size=64, run_name="h")


def test_a_diverging_lbfgs_head_raises():
    x, y = features()
    bad = x.clone()
    bad[5, 3] = math.inf
    with pytest.raises(DivergenceError, match=r"logistic regression 'r' diverged"):
        logistic_regression((bad, y), (x, y), 4, max_iter=20, run_name="r")


def test_run_linear_writes_no_summary_after_divergence(tmp_path):
    from sparselab.studies.transfer.linear import run_linear
    from sparselab.studies.transfer.options import LinearProtocol
    from sparselab.transfer.features import save_features

    x, y = features()
    for split in ("train", "test"):
        save_features(tmp_path / f"{split}.safetensors", x, y, {"num_classes": 4, "split": split})
    options = LinearProtocol(seeds=[0], epochs=3, lr=1e8, decay_after=[10])
    with pytest.raises(DivergenceError, match=rf"linear head '{re.escape(str(tmp_path))}, seed 0' diverged at epoch"):
        run_linear(
            tmp_path / "train.safetensors",
            tmp_path / "test.safetensors",
            tmp_path / "summary.json",
            tmp_path / "history.csv",
            options=options,
        )
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "history.csv").exists()


# ----------------------------------------------------------------------------- checkpoints and path-norms


def bn_model() -> nn.Module:
    return build_seeded(ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [8], "batch_norm": True}), 0)


def test_save_checkpoint_refuses_a_nan_parameter_naming_path_and_tensor(tmp_path):
    net = build_seeded(SPEC, 0)
    with torch.no_grad():
        net.get_parameter("3.weight")[1, :3] = math.nan
    path = tmp_path / "model.safetensors"
    with pytest.raises(
        DivergenceError,
        match=rf"{re.escape(str(path))}: refusing to write non-finite weights: 3\.weight "
        r"\(3 of 512 entries NaN or infinite\)",
    ):
        save_checkpoint(path, net, SPEC)
    assert list(tmp_path.iterdir()) == []


def test_save_checkpoint_refuses_an_infinite_buffer(tmp_path):
    net = bn_model()
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm1d))
    bn.running_var[0] = math.inf
    name = next(n for n, b in net.named_buffers() if b is bn.running_var)
    spec = ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [8], "batch_norm": True})
    with pytest.raises(DivergenceError, match=rf"non-finite weights: {name} \(1 of 8 entries"):
        save_checkpoint(tmp_path / "m.safetensors", net, spec)
    assert list(tmp_path.iterdir()) == []


def nan_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint whose first weight holds a NaN, with a sidecar that matches it (as an old run's
    checkpoint, or one from elsewhere, could be: save_checkpoint itself refuses NaN)."""
    path = tmp_path / "nan.safetensors"
    save_checkpoint(path, build_seeded(SPEC, 0), SPEC)
    tensors = load_file(str(path))
    tensors["1.weight"][0, 0] = math.nan
    save_file(tensors, str(path), metadata={"format": "sparselab-checkpoint/1"})
    meta = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**meta, "tensors_sha256": file_sha256(path)}))
    return path


def test_pathnorm_cli_on_a_nan_checkpoint_exits_non_zero_with_one_line(tmp_path, capsys):
    path = nan_checkpoint(tmp_path)
    rc = cli(["pathnorm", str(path)])
    captured = capsys.readouterr()
    assert rc != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {path}: non-finite weights: 1.weight (1 of 2048 entries NaN or infinite)")


def test_path_norms_of_a_model_with_nan_weights_name_the_tensor():
    from sparselab.metrics.pathnorm import path_norms

    net = build_seeded(SPEC, 0)
    with torch.no_grad():
        net.get_parameter("3.weight")[0, 0] = math.nan
    with pytest.raises(DivergenceError, match=r"non-finite weights: 3\.weight \(1 of 512 entries"):
        path_norms(net, [1.0], (1, 8, 8))


def test_analyse_pretrained_refuses_a_nan_checkpoint_naming_it(tmp_path):
    from sparselab.studies.pathnorm.pretrained import analyse_pretrained

    path = nan_checkpoint(tmp_path)
    with pytest.raises(DivergenceError, match=rf"{re.escape(str(path))}: non-finite weights: 1\.weight"):
        analyse_pretrained(
            tmp_path / "summary.json",
            tmp_path / "margins.safetensors",
            name="nan",
            data=DataHparams(val_fraction=0.1),
            checkpoint=path,
            compute=CPU,
        )
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "margins.safetensors").exists()


# ----------------------------------------------------------------------------- the workflow


@pytest.mark.workflow
def test_snakemake_fails_on_a_diverging_recipe_and_keeps_no_model(tmp_path):
    from conftest import copy_workflow, run_snakemake, tiny_config, write_config

    wf = copy_workflow(tmp_path / "repo")
    config = tiny_config()
    config["recipes"]["dense"].update({"epochs": 2, "optimizer": {"lr": 1.0e6}, "schedule": {"kind": "constant"}})
    write_config(wf / "config.yaml", config)
    run = "results/train/digits/lenet/dense/seed0"
    proc = run_snakemake(wf, f"{run}/model.safetensors", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert not (wf / run / "model.safetensors").exists() and not (wf / run / "metrics.csv").exists()
    log = (wf / "logs/train/digits/lenet/dense/seed0.log").read_text()
    assert f"DivergenceError: run '{run}' diverged at epoch 1, step " in log


def test_a_diverging_gradient_flow_round_raises_naming_the_round_and_writes_no_output(tmp_path):
    from sparselab.studies.gradflow.prune import PruneSpec, RoundFiles, run_prune_rounds

    files = RoundFiles(
        tmp_path / "model.safetensors", tmp_path / "rounds.csv", tmp_path / "hparams.json", tmp_path / ".state"
    )
    round_recipe = TrainHparams.from_dict(
        {"epochs": 1, "batch_size": 128, "optimizer": {"lr": 1.0e6}, "schedule": {"kind": "constant"}}
    )
    with pytest.raises(
        DivergenceError, match=rf"run '{re.escape(str(tmp_path))} \(round 1\)' diverged at epoch 1, step "
    ):
        run_prune_rounds(
            files,
            data=DataHparams(val_fraction=0.1, channels=3),
            model=ModelHparams("cifar_resnet20", {"width": 2}),
            recipe=round_recipe,
            prune=PruneSpec("mag_based", target=0.5, rounds=2, protect=("conv1",)),
            seed=0,
            compute=CPU,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".state"]
    assert not list((tmp_path / ".state").glob("round*"))


@pytest.mark.workflow
def test_every_data_parallel_process_stops_at_the_same_step(tmp_path):
    """Only rank 1's loss is NaN at step 4 (rank 0's first NaN loss would be step 5): the ranks
    reduce their status and raise the same error, naming step 4."""
    import os
    import subprocess

    from conftest import REPO

    from sparselab.launch import torchrun_command

    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPO / "lib")}
    cmd = torchrun_command(2, str(REPO / "tests" / "ddp_divergence_worker.py"), [str(tmp_path)])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    messages = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert messages[0] == messages[1], messages
    assert messages[0].startswith("run 'ddp' diverged at epoch 1, step 4 (step 4 of "), messages[0]
    assert not (tmp_path / "metrics.csv").exists()
