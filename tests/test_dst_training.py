"""Dynamic sparse methods inside the training engine (sparselab.dst.callbacks, layers)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.dst.callbacks import DSR, SET, DeepR, StaticSparse, StepSchedule
from sparselab.dst.layers import active_count, initial_masks, sparse_tensors
from sparselab.models import build_model
from sparselab.train.engine import train

DATA = DataHparams(source="digits", val_fraction=0.0)
COMPUTE = ComputeHparams(device="cpu", progress="lines")
RECIPE = TrainHparams.from_dict(
    {
        "epochs": 3,
        "batch_size": 100,
        "optimizer": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        "schedule": {"kind": "constant"},
    }
)


def lenet():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_model("lenet300_100", 10, (1, 8, 8), hidden=[64, 32], batch_norm=True)


def masks_for(model, sparsity: float = 0.9, seed: int = 0):  # type: ignore[no-untyped-def]
    return initial_masks(model, sparse_tensors(model, "lenet300_100"), sparsity, torch.Generator().manual_seed(seed))


# ============================================================================ layer sets and initial masks
def test_paper_sparse_layers_and_initial_counts() -> None:
    wrn = build_model("wrn", 10, (3, 32, 32), depth=28, widen_factor=2.0)
    names = sparse_tensors(wrn, "wrn")
    params = dict(wrn.named_parameters())
    assert len(names) == 24 and sum(params[n].numel() for n in names) == 1_451_520  # notes §3
    resnet = build_model("resnet50", 1000, (3, 224, 224))
    names = sparse_tensors(resnet, "resnet50")
    params = dict(resnet.named_parameters())
    assert len(names) == 49 and names[-1] == "fc.weight" and not any("downsample" in n for n in names)
    assert sum(active_count(params[n].numel(), 0.8) for n in names) == 4_544_896  # notes §3: s = 0.8
    model = lenet()
    masks = masks_for(model, 0.9)
    sizes = {n: p.numel() for n, p in model.named_parameters() if n in masks}
    assert {n: int(m.sum()) for n, m in masks.items()} == {n: int(0.1 * k + 0.1) for n, k in sizes.items()}


# ============================================================================ engine: masked gradients
def test_inactive_entries_get_no_gradient_so_their_momentum_stays_zero() -> None:
    model = lenet()
    masks = masks_for(model)
    result = train(
        model, build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(StaticSparse(masks),)
    )
    for n, m in masks.items():
        assert (result.momentum[n][~m] == 0).all(), n
        assert (dict(result.model.named_parameters())[n][~m] == 0).all()


# ============================================================================ DSR
def test_dsr_keeps_the_active_count_and_reallocates_on_the_global_clock() -> None:
    model = lenet()
    masks = masks_for(model)
    total = sum(int(m.sum()) for m in masks.values())
    period = StepSchedule({0: 3, 2: 5})  # epochs 0-1 every 3 iterations, then every 5
    dsr = DSR(masks, period, stop_epoch=None, seed=1, target=20, threshold=1e-3)
    result = train(model, build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(dsr,))
    hist = pd.DataFrame(result.history)
    assert (hist["active_entries"] == total).all()
    assert sum(int(m.sum()) for m in result.mask.to_tensors().values()) == total
    steps = len(build_splits(DATA).train) // 100 + (1 if len(build_splits(DATA).train) % 100 else 0)
    expected = sum(1 for s in range(1, 3 * steps + 1) if s % (3 if (s - 1) // steps < 2 else 5) == 0)
    assert dsr.events == expected
    assert dsr.threshold != 1e-3  # it adapted


def test_reallocation_stops_at_the_stop_epoch() -> None:
    model = lenet()
    dsr = DSR(masks_for(model), StepSchedule({0: 2}), stop_epoch=1, seed=1, target=10)
    train(model, build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(dsr,))
    steps = math.ceil(len(build_splits(DATA).train) / 100)
    assert dsr.events == steps // 2  # only during epoch 0


def test_set_keeps_each_layer_count() -> None:
    model = lenet()
    masks = masks_for(model)
    cb = SET(masks, StepSchedule({0: 4}), stop_epoch=None, seed=2, fraction=0.2)
    result = train(model, build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(cb,))
    final = {n: int(t.sum()) for n, t in result.mask.to_tensors().items()}
    assert final == {n: int(m.sum()) for n, m in masks.items()} and cb.events > 0
    assert any(not torch.equal(cb.masks[n], masks[n]) for n in masks)  # it did rewire


# ============================================================================ DeepR
class _Ctx:
    def __init__(self, model: torch.nn.Module, epoch: int = 1) -> None:
        self.model, self.epoch = model, epoch


def test_deepr_adds_noise_of_the_scheduled_std_and_the_l1_sign_to_active_gradients_only() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(400, 500, bias=False)
    mask = torch.rand(500, 400) < 0.5
    with torch.no_grad():
        layer.weight.mul_(mask)
    layer.weight.grad = torch.zeros_like(layer.weight)
    model = torch.nn.Sequential(layer)
    temps = StepSchedule({0: 1e-2, 1: 1e-4})
    cb = DeepR({"0.weight": mask}, temps, stop_epoch=None, seed=3, eta=0.5, l1=0.0)
    cb.on_before_step(_Ctx(model, epoch=1))  # epoch index 0: T = 1e-2, std = sqrt(2 * 0.5 * 1e-2) = 0.1
    g = layer.weight.grad
    assert (g[~mask] == 0).all()
    assert abs(float(g[mask].std()) - 0.1) < 0.003
    layer.weight.grad = torch.zeros_like(layer.weight)
    cb = DeepR({"0.weight": mask}, StepSchedule({0: 0.0}), stop_epoch=None, seed=3, eta=0.5, l1=1e-3)
    cb.on_before_step(_Ctx(model))
    assert torch.equal(layer.weight.grad, 1e-3 * torch.sign(layer.weight.detach()) * mask)


def test_deepr_trains_with_a_constant_number_of_connections() -> None:
    model = lenet()
    masks = masks_for(model)
    cb = DeepR(masks, StepSchedule({0: 1e-5}), stop_epoch=None, seed=4, eta=0.01, l1=1e-5)
    result = train(model, build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(cb,))
    assert (pd.DataFrame(result.history)["active_entries"] == sum(int(m.sum()) for m in masks.values())).all()
    assert cb.removed > 0


def test_schedule_needs_epoch_zero() -> None:
    with pytest.raises(ValueError, match="epoch 0"):
        StepSchedule({5: 100})
    assert StepSchedule({0: 100, 25: 200})(24) == 100 and StepSchedule({0: 100, 25: 200})(25) == 200


def test_a_killed_dsr_run_resumes_and_ends_bitwise_like_an_uninterrupted_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sparselab.train.callbacks import Callback

    splits = build_splits(DATA)

    def dsr():  # type: ignore[no-untyped-def]
        return DSR(masks_for(lenet()), StepSchedule({0: 3}), stop_epoch=None, seed=5, target=20)

    whole_cb = dsr()
    whole = train(
        lenet(),
        splits,
        RECIPE,
        seeds=SeedHparams(),
        compute=COMPUTE,
        callbacks=(whole_cb,),
        state_dir=tmp_path / "whole",
    )

    class Kill(Callback):
        def on_step_end(self, ctx) -> None:  # type: ignore[no-untyped-def]
            if ctx.step == ctx.steps_per_epoch + 3:  # inside epoch 2: the last saved state is epoch 1's
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            lenet(),
            splits,
            RECIPE,
            seeds=SeedHparams(),
            compute=COMPUTE,
            callbacks=(dsr(), Kill()),
            state_dir=tmp_path / "killed",
        )
    resumed_cb = dsr()
    resumed = train(
        lenet(),
        splits,
        RECIPE,
        seeds=SeedHparams(),
        compute=COMPUTE,
        callbacks=(resumed_cb,),
        state_dir=tmp_path / "killed",
    )
    assert resumed.resumed_from_epoch == 1
    assert resumed_cb.threshold == whole_cb.threshold and resumed_cb.events == whole_cb.events
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(whole_cb.masks[n], resumed_cb.masks[n]) for n in whole_cb.masks)


def test_kernel_granularity_and_big_new_weights_in_training() -> None:
    # whole 3x3 kernels on and off: every kernel of the final weights is all-zero or mask-active;
    # with big new weights the regrown kernels start from fresh Gaussian values (non-zero)
    torch.manual_seed(0)
    model = build_model("wrn", 10, (3, 8, 8), depth=10, widen_factor=1.0)
    names = sparse_tensors(model, "wrn")
    masks = initial_masks(model, names, 0.8, torch.Generator().manual_seed(0), "kernel")
    assert all(m.shape == dict(model.named_parameters())[n].shape[:2] for n, m in masks.items())
    data = DataHparams(source="digits", channels=3)
    recipe = TrainHparams.from_dict({**RECIPE.to_dict(), "epochs": 1})
    cb = DSR(
        masks, StepSchedule({0: 2}), None, seed=6, target=5, threshold=0.05, granularity="kernel", big_new_weights=True
    )
    grown_values = []
    real = cb.on_step_end

    def spy(ctx):  # type: ignore[no-untyped-def]
        real(ctx)
        params = dict(ctx.model.named_parameters())
        grown_values.extend(float(params[n].detach()[g].abs().sum()) for n, g in cb._pending.items() if g.any())

    cb.on_step_end = spy  # type: ignore[method-assign]
    result = train(model, build_splits(data), recipe, seeds=SeedHparams(), compute=COMPUTE, callbacks=(cb,))
    assert sum(int(m.sum()) for m in cb.masks.values()) == sum(int(m.sum()) for m in masks.values())
    params = dict(result.model.named_parameters())
    for n, m in cb.masks.items():
        assert (params[n][~m] == 0).all()  # whole kernels off
    assert cb.events > 0 and grown_values and all(v > 0 for v in grown_values)
