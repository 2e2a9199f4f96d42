"""The gradient-flow pruning phase (sparselab.studies.gradflow.prune) end to end on digits."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import DEVICE, expected_parents, sidecar_parents

from sparselab.config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from sparselab.models.checkpoint import load_checkpoint
from sparselab.models.spec import ArchSpec
from sparselab.studies.gradflow import prune as gradflow
from sparselab.studies.gradflow.prune import PruneSpec, RoundFiles, run_prune_rounds
from sparselab.train.run import RunFiles

DATA = DataHparams(source="digits", val_fraction=0.1, channels=3)
MODEL = ModelHparams("cifar_resnet20", {"width": 2})
RECIPE = TrainHparams.from_dict(
    {
        "epochs": 1,
        "batch_size": 128,
        "temperature": 5.0,
        "optimizer": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        "schedule": {"kind": "constant"},
    }
)
pytestmark = [pytest.mark.device, pytest.mark.usefixtures("one_thread")]  # conftest
COMPUTE = ComputeHparams(device=DEVICE, progress="lines")  # pytest --device cuda: on the GPU


def files(d: Path) -> RoundFiles:
    return RoundFiles(d / "model.safetensors", d / "rounds.csv", d / "hparams.json", d / ".state")


def spec(measure: str = "loss_based", **kw) -> PruneSpec:  # type: ignore[no-untyped-def]
    return PruneSpec(
        measure,
        **{
            "target": 0.5,
            "rounds": 3,
            "importance_batches": 2,
            "importance_batch_size": 64,
            "protect": ("conv1",),
            **kw,
        },
    )


def dies_in_round(monkeypatch: pytest.MonkeyPatch, k: int):  # type: ignore[no-untyped-def]
    """Make round ``k`` of the next run stop (a kill) after its training, before it is saved;
    returns the real function to put back."""
    real = gradflow.kendall_tau_to_magnitude
    calls = []

    def dies(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == k:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(gradflow, "kendall_tau_to_magnitude", dies)
    return real


def test_rounds_reach_the_target_exactly_and_the_checkpoint_reloads(tmp_path: Path) -> None:
    f = files(tmp_path)
    net, mask, records = run_prune_rounds(
        f, data=DATA, model=MODEL, recipe=RECIPE, prune=spec(), seed=0, compute=COMPUTE
    )
    rows = [int(r["rows"]) for r in records]
    assert rows == [int(r["rows_target"]) for r in records] == [72, 58, 48]  # 96 rankable filters -> 50%
    with open(f.rounds_csv) as fh:
        table = list(csv.DictReader(fh))
    assert [int(r["round"]) for r in table] == [1, 2, 3]
    assert all(-1 <= float(r["kendall_tau_magnitude"]) <= 1 for r in table)
    assert int(table[-1]["params_alive"]) < int(table[0]["params_alive"])
    ckpt = load_checkpoint(f.checkpoint)
    assert ckpt.spec.widths and ckpt.mask is not None  # inner convs narrowed, residual filters masked
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ckpt.model.eval()(x), net.cpu().eval()(x), atol=1e-6)
    assert not any((tmp_path / ".state").glob("train*"))  # per-round training state is cleaned up
    assert sidecar_parents(f.checkpoint) == []  # the pruning phase trains from scratch


def test_the_final_training_names_the_pruned_checkpoint_its_parent(tmp_path: Path) -> None:
    from sparselab.studies.gradflow.final import run_final_training

    f = files(tmp_path / "prune")
    run_prune_rounds(f, data=DATA, model=MODEL, recipe=RECIPE, prune=spec(rounds=1), seed=0, compute=COMPUTE)
    final = RunFiles.in_directory(tmp_path / "final")
    run_final_training(
        final, tmp_path / "summary.json", pruned=f.checkpoint, data=DATA, recipe=RECIPE, seed=0, compute=COMPUTE
    )
    assert sidecar_parents(final.checkpoint) == expected_parents(("pruned", f.checkpoint))


def test_a_killed_run_resumes_after_its_last_round_and_ends_where_an_uninterrupted_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = files(tmp_path / "whole")
    run_prune_rounds(whole, data=DATA, model=MODEL, recipe=RECIPE, prune=spec(), seed=1, compute=COMPUTE)

    killed = files(tmp_path / "killed")
    real = dies_in_round(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run_prune_rounds(killed, data=DATA, model=MODEL, recipe=RECIPE, prune=spec(), seed=1, compute=COMPUTE)
    assert not killed.checkpoint.exists() and (killed.state_dir / "round2.safetensors").exists()
    monkeypatch.setattr(gradflow, "kendall_tau_to_magnitude", real)
    _, _, records = run_prune_rounds(
        killed, data=DATA, model=MODEL, recipe=RECIPE, prune=spec(), seed=1, compute=COMPUTE
    )
    assert [r["round"] for r in records][-1] == 3
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(killed.checkpoint)
    assert a.spec.widths == b.spec.widths
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    "measure, extra",
    [("biased_loss", {"use_init": True}), ("biased_loss_tracked", {}), ("grad_preserve", {}), ("bn", {})],
)
def test_measures_with_init_tracking_and_class_balanced_samples_run(tmp_path: Path, measure: str, extra: dict) -> None:
    prune = spec(measure, rounds=2, importance_batches=4, **extra)
    _, _, records = run_prune_rounds(
        files(tmp_path), data=DATA, model=MODEL, recipe=RECIPE, prune=prune, seed=0, compute=COMPUTE
    )
    assert [int(r["rows"]) for r in records] == [int(r["rows_target"]) for r in records]


def test_bad_pruning_settings_fail_before_any_training(tmp_path: Path) -> None:
    for bad in (spec("nope"), spec(target=1.0), spec(rounds=0)):
        with pytest.raises(ValueError):
            run_prune_rounds(files(tmp_path), data=DATA, model=MODEL, recipe=RECIPE, prune=bad, seed=0, compute=COMPUTE)
    assert not (tmp_path / ".state").exists()


# ============================================================================ checkpoint selection
def test_best_val_selection_keeps_the_best_validation_epoch_and_survives_a_resume(tmp_path: Path) -> None:
    from sparselab.config import SeedHparams
    from sparselab.data import build_splits
    from sparselab.models import build_model
    from sparselab.train.callbacks import Callback
    from sparselab.train.engine import train

    class WreckLastEpoch(Callback):  # zero every weight in the last epoch: its val top-1 drops to chance
        def on_step_end(self, ctx) -> None:  # type: ignore[no-untyped-def]
            if ctx.epoch == ctx.hparams.epochs:
                with torch.no_grad():
                    for p in ctx.model.parameters():
                        p.zero_()

    splits = build_splits(DATA)
    recipe = TrainHparams.from_dict({**RECIPE.to_dict(), "epochs": 4, "select": "best_val"})
    torch.manual_seed(0)
    model = build_model("cifar_resnet20", 10, (3, 8, 8), width=2)
    result = train(
        model,
        splits,
        recipe,
        seeds=SeedHparams(),
        compute=COMPUTE,
        state_dir=tmp_path / "s",
        callbacks=(WreckLastEpoch(),),
    )
    vals = [r["val_top1"] for r in result.history]
    best = vals.index(max(vals)) + 1
    assert best < 4 and vals[-1] < max(vals)
    assert result.selected_epoch == best and result.final["epoch"] == best
    assert result.final["val_top1"] == max(vals)
    from sparselab.compute import place
    from sparselab.data.loaders import make_loader
    from sparselab.metrics.classification import evaluate

    val = make_loader(splits.val, 256, shuffle=False)
    placement = place(COMPUTE)  # as the engine evaluated it
    assert evaluate(result.model, val, placement.device, **placement.options())["top1"] == max(
        vals
    )  # the selected weights
    # a finished run's resume state restarts at its end and selects the same weights from it
    again = train(
        build_model("cifar_resnet20", 10, (3, 8, 8), width=2),
        splits,
        recipe,
        seeds=SeedHparams(),
        compute=COMPUTE,
        state_dir=tmp_path / "s",
        callbacks=(WreckLastEpoch(),),
    )
    assert again.resumed_from_epoch == 4 and again.selected_epoch == best
    sa, sb = result.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)
    with pytest.raises(ValueError, match="val_fraction"):
        train(
            model, build_splits(DataHparams(source="digits", channels=3)), recipe, seeds=SeedHparams(), compute=COMPUTE
        )


def test_preserved_momentum_is_carried_into_the_next_round_cut_like_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = []
    real_train = gradflow.train

    def spy(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        m = kwargs.get("momentum")
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        starts.append(None if m is None else all(tuple(m[n].shape) == shapes[n] for n in m) and len(m) == len(shapes))
        if m is not None:
            starts[-1] = starts[-1] and any(float(v.abs().sum()) > 0 for v in m.values())
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(gradflow, "train", spy)
    run_prune_rounds(
        files(tmp_path),
        data=DATA,
        model=MODEL,
        recipe=RECIPE,
        prune=spec(rounds=2, preserve_momentum=True),
        seed=0,
        compute=COMPUTE,
    )
    assert starts == [None, True]  # round 1 from zeros; round 2 from round 1's buffers, shaped like the pruned net
    starts.clear()
    run_prune_rounds(
        files(tmp_path / "reset"), data=DATA, model=MODEL, recipe=RECIPE, prune=spec(rounds=2), seed=0, compute=COMPUTE
    )
    assert starts == [None, None]


def test_training_can_start_from_given_momentum_buffers() -> None:
    # one SGD step: buf = mu * M + g, p -= lr * buf; without M the step is lr * g, so the two runs
    # differ by exactly lr * mu * M
    from sparselab.config import SeedHparams
    from sparselab.data import build_splits
    from sparselab.models import build_model
    from sparselab.train.engine import train

    splits = build_splits(DATA)
    recipe = TrainHparams.from_dict(
        {
            "epochs": 1,
            "batch_size": 4096,
            "optimizer": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0},
            "schedule": {"kind": "constant"},
        }
    )
    torch.manual_seed(0)
    start = build_model("cifar_resnet20", 10, (3, 8, 8), width=2)
    given = {n: torch.randn_like(p) for n, p in start.named_parameters()}
    runs = []
    for momentum in (None, given):
        model = build_model("cifar_resnet20", 10, (3, 8, 8), width=2)
        model.load_state_dict(start.state_dict())
        result = train(model, splits, recipe, seeds=SeedHparams(), compute=COMPUTE, momentum=momentum)
        runs.append({n: p.detach().cpu() for n, p in result.model.named_parameters()})
        assert result.momentum is not None and result.momentum.keys() == given.keys()
    for n, m in given.items():
        assert torch.allclose(runs[0][n] - runs[1][n], 0.1 * 0.9 * m, atol=1e-5), n


def test_rounds_of_another_configuration_are_not_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = files(tmp_path)
    real = dies_in_round(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run_prune_rounds(f, data=DATA, model=MODEL, recipe=RECIPE, prune=spec(), seed=0, compute=COMPUTE)
    assert (f.state_dir / "round1.safetensors").exists()
    monkeypatch.setattr(gradflow, "kendall_tau_to_magnitude", real)
    # the same output path with another target: round 1 must be redone, not taken from the old run
    _, _, records = run_prune_rounds(
        f, data=DATA, model=MODEL, recipe=RECIPE, prune=spec(target=0.25), seed=0, compute=COMPUTE
    )
    assert [int(r["rows_target"]) for r in records] == [86, 79, 72] and int(records[0]["rows"]) == 86  # not 72


def test_warm_up_trains_one_epoch_less_than_asked_before_round_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    epochs = []
    real_train = gradflow.train

    def spy(model, splits, recipe, *args, **kwargs):  # type: ignore[no-untyped-def]
        epochs.append(recipe.epochs)
        return real_train(model, splits, recipe, *args, **kwargs)

    monkeypatch.setattr(gradflow, "train", spy)
    run_prune_rounds(
        files(tmp_path),
        data=DATA,
        model=MODEL,
        recipe=RECIPE,
        prune=spec(rounds=2, warmup_epochs=3),
        seed=0,
        compute=COMPUTE,
    )
    assert epochs == [2, 1, 1]  # the original: warmup_epochs - 1, since every round trains an epoch anyway
    assert not (tmp_path / ".state" / "warmup").exists()


# ============================================================================ measured speed-up
def test_the_final_summary_times_the_narrowed_network_against_the_dense_architecture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """measured_speedup pairs the checkpoint's narrowed network with a dense model of the same
    architecture (its widths dropped) on the job's device, at each batch size, on inputs of the
    checkpoint's input shape; the summary's keys carry the batch size."""
    from sparselab.metrics import latency
    from sparselab.studies.gradflow import final

    f = files(tmp_path)
    run_prune_rounds(f, data=DATA, model=MODEL, recipe=RECIPE, prune=spec(rounds=1), seed=0, compute=COMPUTE)
    ckpt = load_checkpoint(f.checkpoint)
    seen = []

    def spy(dense, pruned, x, **kw):  # type: ignore[no-untyped-def]
        seen.append((sum(p.numel() for p in dense.parameters()), sum(p.numel() for p in pruned.parameters()), x))
        return latency.paired_latency(dense, pruned, x, repeats=3, warmup=1, min_sample_s=0.0, **kw)

    monkeypatch.setattr(final, "paired_latency", spy)
    out = final.measured_speedup(f.checkpoint, COMPUTE, batch_sizes=(5, 1))
    dense_params = sum(p.numel() for p in ArchSpec("cifar_resnet20", 10, (3, 8, 8), {"width": 2}).build().parameters())
    assert [(d, p) for d, p, _ in seen] == [(dense_params, sum(p.numel() for p in ckpt.model.parameters()))] * 2
    assert seen[0][1] < dense_params  # the checkpoint is physically narrowed
    assert [tuple(x.shape) for _, _, x in seen] == [(5, 3, 8, 8), (1, 3, 8, 8)]
    assert all(x.device.type == DEVICE for _, _, x in seen)
    assert set(out) == {
        f"latency_b{b}_{k}" for b in (5, 1) for k in ("dense_ms", "pruned_ms", "speedup", "threads", "device")
    }
    assert (
        out["latency_b5_dense_ms"] > 0 and out["latency_b1_speedup"] > 0 and out["latency_b5_device"].startswith(DEVICE)
    )
