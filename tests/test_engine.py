"""The training engine: schedules, loss, masks, callbacks, metrics CSV, resume and rewind."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparselab.config import (
    ComputeHparams,
    DataHparams,
    HparamsError,
    OptimizerHparams,
    ScheduleHparams,
    SeedHparams,
    TrainHparams,
)
from sparselab.data import build_splits
from sparselab.models.spec import ArchSpec
from sparselab.sparsity.magnitude import magnitude_mask
from sparselab.sparsity.mask import Mask
from sparselab.train.callbacks import Callback
from sparselab.train.engine import train
from sparselab.train.optim import build_optimizer, build_scheduler, lr_factor_fn
from sparselab.train.run import build_seeded
from sparselab.train.state import TrainState

CPU = ComputeHparams(device="cpu", progress="lines")
SEEDS = SeedHparams.for_replicate(0)


@pytest.fixture(scope="module")
def digits():
    return build_splits(DataHparams(val_fraction=0.1))


def lenet() -> nn.Module:
    return build_seeded(ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [32, 16]}), SEEDS.init)


def recipe(**kw) -> TrainHparams:
    base = {"epochs": 4, "batch_size": 64, "optimizer": {"lr": 0.05, "nesterov": True}, "schedule": {"kind": "cosine"}}
    return TrainHparams.from_dict({**base, **kw})


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ----------------------------------------------------------------------------- schedules and optimizer


def test_warmup_then_multistep_at_known_iterations():
    f = lr_factor_fn(ScheduleHparams(kind="multistep", warmup_epochs=1, milestones=[2, 3.5], gamma=0.1), 10, 5)
    assert [f(0), f(5), f(9), f(10)] == pytest.approx([0.0, 0.5, 0.9, 1.0])
    assert [f(19), f(20), f(34), f(35)] == pytest.approx([1.0, 0.1, 0.1, 0.01])


def test_cosine_reaches_its_floor_and_passes_the_midpoint():
    f = lr_factor_fn(ScheduleHparams(kind="cosine", warmup_epochs=0, final_lr_factor=0.1), 10, 10)
    assert f(0) == pytest.approx(1.0)
    assert f(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(100) == pytest.approx(0.1)
    g = lr_factor_fn(ScheduleHparams(kind="cosine", warmup_epochs=2, warmup_start=0.1), 10, 10)
    assert [g(0), g(10), g(20)] == pytest.approx([0.1, 0.55, 1.0])  # warm-up from 0.1x, then cosine starts at 1


def _lr_per_step(hp: ScheduleHparams, steps_per_epoch: int, epochs: int, base: float = 1.0) -> list[list[float]]:
    """The lr of every iteration, by (0-based) epoch, as the engine's scheduler sets it."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
    sched = build_scheduler(opt, hp, steps_per_epoch, epochs)
    lrs = []
    for _ in range(epochs):
        lrs.append([])
        for _ in range(steps_per_epoch):
            lrs[-1].append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return lrs


def test_per_epoch_stepping_warms_up_to_the_full_rate_in_the_last_warmup_epoch():
    # the original's CosineLR (AC/DC optimization/lr_schedulers.py, from STR), stepped after every
    # epoch: epoch e < W at (e + 1) / W, then 0.5 (1 + cos(pi (e - W) / (E - W)))
    lrs = _lr_per_step(ScheduleHparams(kind="cosine", warmup_epochs=4, step_every="epoch"), 3, 10, base=2.0)
    assert all(len(set(epoch)) == 1 for epoch in lrs)  # one lr per epoch
    expected = [2.0 * (e + 1) / 4 if e < 4 else 2.0 * 0.5 * (1 + math.cos(math.pi * (e - 4) / 6)) for e in range(10)]
    assert [epoch[0] for epoch in lrs] == pytest.approx(expected)
    steps = _lr_per_step(ScheduleHparams(kind="multistep", milestones=[2, 3], gamma=0.5, step_every="epoch"), 3, 4)
    assert [epoch[0] for epoch in steps] == pytest.approx([1.0, 1.0, 0.5, 0.25])  # from the start of epochs 2 and 3


@pytest.mark.parametrize("bad", [{"warmup_epochs": 0.5}, {"kind": "multistep", "milestones": [2.5]}])
def test_per_epoch_stepping_needs_whole_epochs(bad):
    with pytest.raises(HparamsError, match="whole epochs"):
        ScheduleHparams.from_dict({"step_every": "epoch", **bad})


def test_weight_decay_can_skip_norm_and_bias():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    groups = build_optimizer(net, OptimizerHparams(weight_decay=0.1, decay_norm_and_bias=False)).param_groups
    assert [len(g["params"]) for g in groups] == [1, 3] and [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert len(build_optimizer(net, OptimizerHparams(weight_decay=0.1)).param_groups) == 1


# ----------------------------------------------------------------------------- the loop


def test_trains_digits_and_logs_every_epoch(digits, tmp_path):
    result = train(lenet(), digits, recipe(epochs=6), seeds=SEEDS, compute=CPU, metrics_csv=tmp_path / "m.csv")
    assert result.final["test_top1"] > 0.9 and result.final["val_top1"] > 0.85
    assert result.history[0]["train_loss"] > result.history[-1]["train_loss"]
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert {"lr", "train_top5", "val_loss", "test_top5", "epoch_time_s"} <= set(rows[0])
    steps = math.ceil(len(digits.train) / 64)
    f = lr_factor_fn(ScheduleHparams(kind="cosine"), steps, 6)
    assert float(rows[2]["lr"]) == pytest.approx(0.05 * f(3 * steps - 1))  # the lr of epoch 3's last step


def test_loss_uses_temperature_and_label_smoothing(digits):
    """With a vanishing lr the model is unchanged, so the epoch's loss is the closed form over the train set."""
    net = lenet()
    net.train()
    x, y = digits.train.tensors
    with torch.no_grad():
        expected = F.cross_entropy(net(x) / 4.0, y, label_smoothing=0.2).item()
    hp = recipe(
        epochs=1, temperature=4.0, label_smoothing=0.2, optimizer={"lr": 1e-12, "momentum": 0.0, "weight_decay": 0.0}
    )
    result = train(net, digits, hp, seeds=SEEDS, compute=CPU)
    assert result.history[0]["train_loss"] == pytest.approx(expected, rel=1e-5)


class Recorder(Callback):
    def __init__(self) -> None:
        self.steps = 0
        self.epochs: list[int] = []

    def on_step_end(self, ctx) -> None:
        self.steps += 1
        assert ctx.step == self.steps

    def on_epoch_end(self, ctx, row) -> None:
        self.epochs.append(ctx.epoch)
        row["custom_metric"] = ctx.epoch * 10.0

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state) -> None:
        self.steps = state["steps"]


def test_callbacks_see_every_step_and_can_add_columns(digits, tmp_path):
    rec = Recorder()
    result = train(
        lenet(), digits, recipe(epochs=2), seeds=SEEDS, compute=CPU, callbacks=[rec], metrics_csv=tmp_path / "m.csv"
    )
    assert rec.steps == 2 * math.ceil(len(digits.train) / 64) and rec.epochs == [1, 2]
    assert [r["custom_metric"] for r in result.history] == [10.0, 20.0]
    assert next(csv.DictReader(open(tmp_path / "m.csv")))["custom_metric"] == "10.0"


def test_mask_stays_enforced_and_eval_before_records_the_start(digits):
    net = lenet()
    mask = magnitude_mask(net, 0.8, scope="layerwise")
    result = train(net, digits, recipe(epochs=2), seeds=SEEDS, compute=CPU, mask=mask, eval_before=True)
    assert Mask.from_zeros(result.model, mask.names()) == mask
    start = result.history[0]
    assert start["epoch"] == 0 and "test_top1" in start and "train_loss" not in start
    assert result.final["test_top1"] > start["test_top1"]


def test_same_seeds_reproduce_bitwise_and_other_data_order_differs(digits):
    a = train(lenet(), digits, recipe(epochs=2), seeds=SEEDS, compute=CPU).model
    b = train(lenet(), digits, recipe(epochs=2), seeds=SEEDS, compute=CPU).model
    c = train(lenet(), digits, recipe(epochs=2), seeds=SEEDS.replace(data_order=1), compute=CPU).model
    assert same_weights(a, b) and not same_weights(a, c)


class Crash(Callback):
    """Dies at the first step of ``epoch``: after the previous epoch's state was saved."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_step_end(self, ctx) -> None:
        if ctx.epoch == self.epoch:
            raise KeyboardInterrupt("simulated kill")


def test_resume_after_a_crash_matches_an_uninterrupted_run(digits, tmp_path):
    hp = recipe(epochs=4)
    mask = magnitude_mask(lenet(), 0.5, scope="layerwise")
    whole = train(lenet(), digits, hp, seeds=SEEDS, compute=CPU, mask=mask, callbacks=[Recorder()])
    with pytest.raises(KeyboardInterrupt):
        train(
            lenet(),
            digits,
            hp,
            seeds=SEEDS,
            compute=CPU,
            mask=mask,
            callbacks=[Recorder(), Crash(3)],
            state_dir=tmp_path,
        )
    rec = Recorder()
    resumed = train(lenet(), digits, hp, seeds=SEEDS, compute=CPU, mask=mask, callbacks=[rec], state_dir=tmp_path)
    assert resumed.resumed_from_epoch == 2
    assert rec.steps == whole.final["step"]  # the callback's own state came back too
    assert same_weights(whole.model, resumed.model)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[-1]["test_loss"] == whole.history[-1]["test_loss"]


class LrPerStep(Callback):
    """The lr every optimizer step used, by epoch (1-based, as ``ctx.epoch``)."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def on_before_step(self, ctx) -> None:
        self.lrs.setdefault(ctx.epoch, []).append(ctx.optimizer.param_groups[0]["lr"])


def test_the_engine_gives_every_iteration_of_an_epoch_one_lr_when_stepped_per_epoch(digits, tmp_path):
    hp = recipe(epochs=4, schedule={"kind": "cosine", "warmup_epochs": 2, "step_every": "epoch"})
    seen = LrPerStep()
    result = train(lenet(), digits, hp, seeds=SEEDS, compute=CPU, callbacks=[seen])
    expected = [0.05 * 0.5, 0.05, 0.05, 0.05 * 0.5]  # warm-up (e + 1) / 2, then cos(pi (e - 2) / 2)
    assert [sorted(set(seen.lrs[e])) for e in (1, 2, 3, 4)] == [[pytest.approx(x)] for x in expected]
    assert [r["lr"] for r in result.history] == pytest.approx(expected)
    # resumed after a crash: the same lrs and weights as the uninterrupted run
    with pytest.raises(KeyboardInterrupt):
        train(lenet(), digits, hp, seeds=SEEDS, compute=CPU, callbacks=[Crash(3)], state_dir=tmp_path)
    again = LrPerStep()
    resumed = train(lenet(), digits, hp, seeds=SEEDS, compute=CPU, callbacks=[again], state_dir=tmp_path)
    assert resumed.resumed_from_epoch == 2 and again.lrs == {3: seen.lrs[3], 4: seen.lrs[4]}
    assert same_weights(result.model, resumed.model)


def test_state_of_another_configuration_is_not_resumed(digits, tmp_path):
    train(lenet(), digits, recipe(epochs=1), seeds=SEEDS, compute=CPU, state_dir=tmp_path)
    other = train(lenet(), digits, recipe(epochs=2), seeds=SEEDS, compute=CPU, state_dir=tmp_path)
    assert other.resumed_from_epoch is None and len(other.history) == 2


def test_rewinding_to_a_snapshot_replays_the_rest_of_training(digits, tmp_path):
    hp = recipe(epochs=4)
    whole = train(lenet(), digits, hp, seeds=SEEDS, compute=CPU, snapshots={2: tmp_path / "epoch2.pt"})
    rewound = train(
        lenet(), digits, hp, seeds=SEEDS, compute=CPU, initial_state=TrainState.load(tmp_path / "epoch2.pt")
    )
    assert [r["epoch"] for r in rewound.history] == [3, 4]
    assert same_weights(whole.model, rewound.model)


def test_finetuning_a_checkpoint_on_a_mismatching_dataset_fails_naming_both(tmp_path):
    from sparselab.models.checkpoint import save_checkpoint
    from sparselab.train.run import RunFiles, run_finetuning

    spec = ArchSpec("lenet300_100", 10, (3, 16, 16), {"hidden": [8]})
    save_checkpoint(tmp_path / "m.safetensors", spec.build(), spec)
    with pytest.raises(ValueError, match=r"input \(3, 16, 16\), dataset 'digits' has 10 classes and input \(1, 8, 8\)"):
        run_finetuning(
            RunFiles.in_directory(tmp_path / "out"),
            init_checkpoint=tmp_path / "m.safetensors",
            data=DataHparams(),
            recipe=recipe(),
            seed=0,
            compute=CPU,
        )
    assert not (tmp_path / "out").exists()  # failed before writing anything
