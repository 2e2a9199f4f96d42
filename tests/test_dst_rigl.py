"""RigL and SNFS (sparselab.dst.growth, dst.rigl) and ERK/uniform layer densities (dst.densities)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from test_dst_training import lenet, masks_for  # the same tiny network and initial masks

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.dst.densities import erk_densities, layer_densities_for, sparsities, uniform_densities
from sparselab.dst.growth import cosine_fraction, rigl_step, snfs_step, split_counts
from sparselab.dst.layers import initial_masks, sparse_tensors
from sparselab.dst.rigl import SNFS, RigL
from sparselab.train.callbacks import Callback
from sparselab.train.engine import train

DATA = DataHparams(source="digits", val_fraction=0.0, subset_fraction=0.4)  # 539 samples: 6 steps an epoch
COMPUTE = ComputeHparams(device="cpu", progress="lines")
RECIPE = TrainHparams.from_dict(
    {
        "epochs": 2,
        "batch_size": 100,
        "optimizer": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        "schedule": {"kind": "constant"},
    }
)


def bools(*flags: int) -> torch.Tensor:
    return torch.tensor(flags, dtype=torch.bool)


# ============================================================================ cosine schedule
def test_cosine_fraction_values() -> None:
    assert cosine_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert cosine_fraction(50, 0.3, 100) == pytest.approx(0.15)
    assert cosine_fraction(25, 0.3, 100) == pytest.approx(0.15 * (1 + math.sqrt(0.5)))
    assert cosine_fraction(75, 0.3, 100) == pytest.approx(0.15 * (1 - math.sqrt(0.5)))
    assert cosine_fraction(100, 0.3, 100) == 0.0 and cosine_fraction(150, 0.3, 100) == 0.0


# ============================================================================ hand-computed updates
def test_rigl_drops_the_smallest_magnitudes_and_grows_the_largest_gradients() -> None:
    mask = bools(1, 1, 1, 1, 1, 1, 0, 0, 0).view(3, 3)
    mags = torch.tensor([0.9, 0.1, 0.5, 0.2, 0.7, 0.3, 0.0, 0.0, 0.0]).view(3, 3)
    grads = torch.tensor([5.0, -1.0, 5.0, 0.0, 5.0, 0.05, -0.4, 0.8, 0.1]).view(3, 3)
    res = rigl_step({"w": mags}, {"w": grads}, {"w": mask}, fraction=0.5)  # k = int(0.5 * 6) = 3
    assert res.dropped["w"].view(-1).nonzero().flatten().tolist() == [1, 3, 5]
    # inactive after the drop: 1, 3, 5, 6, 7, 8 with |g| 1.0, 0, 0.05, 0.4, 0.8, 0.1 -> 1, 7, 6
    assert res.grown["w"].view(-1).nonzero().flatten().tolist() == [1, 6, 7]
    assert res.masks["w"].view(-1).nonzero().flatten().tolist() == [0, 1, 2, 4, 6, 7]
    small = rigl_step({"w": mags}, {"w": grads}, {"w": mask}, fraction=0.3)  # int(1.8) = 1: drop 1, regrow 1
    assert torch.equal(small.masks["w"], mask)


def test_snfs_redistributes_by_mean_momentum_and_grows_by_momentum() -> None:
    masks = {"a": bools(1, 1, 1, 1, 0, 0), "b": bools(1, 1, 0, 0, 0, 0)}
    mags = {"a": torch.tensor([0.5, 0.1, 0.4, 0.3, 0, 0]), "b": torch.tensor([0.2, 0.6, 0, 0, 0, 0])}
    momenta = {
        "a": torch.tensor([0.25, -0.25, 0.25, 0.25, 0.9, 0.1]),  # mean |m| of active: 0.25
        "b": torch.tensor([0.75, -0.75, 0.3, 0.8, 0.05, -0.7]),  # 0.75
    }
    res = snfs_step(mags, momenta, masks, fraction=0.5)
    # drops ceil(0.5*4) = 2 in a (0.1, 0.3: entries 1, 3) and ceil(0.5*2) = 1 in b (0.2: entry 0);
    # K = 3 split 0.25:0.75 -> quotas 0.75, 2.25 -> 0 + 2, remainder to a (0.75 > 0.25): a 1, b 2
    assert res.dropped["a"].nonzero().flatten().tolist() == [1, 3]
    assert res.dropped["b"].nonzero().flatten().tolist() == [0]
    assert res.grown["a"].nonzero().flatten().tolist() == [4]  # |m| 0.9 among 1, 3, 4, 5
    # |m| 0.75, 0.3, 0.8, 0.05, 0.7 at 0, 2, 3, 4, 5: 3 and the just-dropped 0 (it stays on)
    assert res.grown["b"].nonzero().flatten().tolist() == [0, 3]
    assert res.masks["a"].nonzero().flatten().tolist() == [0, 2, 4]
    assert res.masks["b"].nonzero().flatten().tolist() == [0, 1, 3]


def test_split_counts_caps_and_passes_the_rest_on() -> None:
    assert split_counts(10, {"a": 1.0, "b": 1.0, "c": 2.0}, {"a": 100, "b": 100, "c": 100}) == {"a": 3, "b": 2, "c": 5}
    # c may take only 1: the other 4 of its 5 go to a and b by weight (2 each)
    assert split_counts(10, {"a": 1.0, "b": 1.0, "c": 2.0}, {"a": 100, "b": 100, "c": 1}) == {"a": 5, "b": 4, "c": 1}
    with pytest.raises(ValueError, match="only 3"):
        split_counts(4, {"a": 1.0}, {"a": 3})


def test_updates_conserve_counts_over_many_steps() -> None:
    g = torch.Generator().manual_seed(1)
    shapes = {"a": (30, 20), "b": (50,), "c": (8, 4, 3, 3)}
    masks = {n: torch.rand(s, generator=g) < 0.3 for n, s in shapes.items()}
    per_layer = {n: int(m.sum()) for n, m in masks.items()}
    total = sum(per_layer.values())
    rigl, snfs = dict(masks), dict(masks)
    for t in range(40):
        mags = {n: torch.rand(s, generator=g) for n, s in shapes.items()}
        sig = {n: torch.randn(s, generator=g) for n, s in shapes.items()}
        f = cosine_fraction(t, 0.5, 40)
        rigl = rigl_step(mags, sig, rigl, f).masks
        snfs = snfs_step(mags, sig, snfs, f).masks
        assert {n: int(m.sum()) for n, m in rigl.items()} == per_layer, t
        assert sum(int(m.sum()) for m in snfs.values()) == total, t
    assert any(int(snfs[n].sum()) != per_layer[n] for n in shapes)  # SNFS did move entries across layers


# ============================================================================ densities
def test_erk_densities_match_the_closed_form() -> None:
    shapes = {"conv": (16, 8, 3, 3), "fc1": (100, 64), "fc2": (10, 100)}
    d = erk_densities(shapes, 0.2)
    raw = {"conv": 30 / 1152, "fc1": 164 / 6400, "fc2": 110 / 1000}
    n = {"conv": 1152, "fc1": 6400, "fc2": 1000}
    eps = 0.2 * sum(n.values()) / sum(raw[k] * n[k] for k in n)
    assert d == pytest.approx({k: eps * raw[k] for k in n})
    assert sum(d[k] * n[k] for k in n) == pytest.approx(0.2 * sum(n.values()))


def test_erk_renormalises_when_a_layer_would_exceed_density_one() -> None:
    # fc2 (10x100) has raw 0.11, 4.3x fc1's: at density 0.5 it would need 0.5 * 8552 / 1000... > 1
    shapes = {"conv": (16, 8, 3, 3), "fc1": (100, 64), "fc2": (10, 100)}
    n = {"conv": 1152, "fc1": 6400, "fc2": 1000}
    raw = {"conv": 30 / 1152, "fc1": 164 / 6400, "fc2": 110 / 1000}
    d = erk_densities(shapes, 0.5)
    assert d["fc2"] == 1.0
    eps = (0.5 * sum(n.values()) - 1000) / (raw["conv"] * n["conv"] + raw["fc1"] * n["fc1"])
    assert d["conv"] == pytest.approx(eps * raw["conv"]) and d["fc1"] == pytest.approx(eps * raw["fc1"])
    assert 0.5 * sum(n.values()) / sum(raw[k] * n[k] for k in n) * raw["fc2"] > 1.0  # the first solve's fc2
    assert sum(d[k] * n[k] for k in n) == pytest.approx(0.5 * sum(n.values()))
    # two rounds: raw 0.2, 0.1, 0.02 at density 0.3 (budget 3150): eps = 3150/260 puts a at 2.4 -> dense;
    # eps = 3050/240 puts b at 1.27 -> dense; eps = 2650/200 = 13.25 gives c 0.265
    d = erk_densities({"a": (10, 10), "b": (20, 20), "c": (100, 100)}, 0.3)
    assert d == pytest.approx({"a": 1.0, "b": 1.0, "c": 0.265})


def test_dense_first_layer_and_uniform() -> None:
    shapes = {"fc1": (100, 64), "fc2": (10, 100)}
    assert uniform_densities(shapes, 0.1, dense=["fc1"]) == {"fc1": 1.0, "fc2": 0.1}
    d = erk_densities({"first": (16, 3, 3, 3), **shapes}, 0.1, dense=["first"])
    assert d["first"] == 1.0 and d == pytest.approx({"first": 1.0, **erk_densities(shapes, 0.1)})
    model = lenet()
    names = sparse_tensors(model, "lenet300_100")
    dens = layer_densities_for(model, names, 0.1, "erk", dense_first=True)
    assert dens[names[0]] == 1.0 and all(dens[k] < 1 for k in names[1:])
    masks = initial_masks(model, names, sparsities(dens), torch.Generator().manual_seed(0))
    assert bool(masks[names[0]].all())


# ============================================================================ in training
def test_rigl_reads_the_dense_gradient_and_keeps_per_layer_counts_in_training() -> None:
    model = lenet()
    masks = masks_for(model)
    seen: list[bool] = []

    class Spy(RigL):
        def update(self, ctx, fraction):  # type: ignore[no-untyped-def]
            seen.append(all(bool((g[~self.masks[n]] != 0).any()) for n, g in self._grads.items()))
            return super().update(ctx, fraction)

    cb = Spy(masks, delta_t=2, stop_step=11, alpha=0.3)
    result = train(model, build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(cb,))
    assert cb.events == len(range(2, 11, 2)) and seen and all(seen)  # gradients at inactive entries
    assert {n: int(m.sum()) for n, m in cb.masks.items()} == {n: int(m.sum()) for n, m in masks.items()}
    assert any(not torch.equal(cb.masks[n], masks[n]) for n in masks)
    params = dict(result.model.named_parameters())
    assert all(bool((params[n][~m] == 0).all()) for n, m in cb.masks.items())


def test_snfs_conserves_the_total_in_training() -> None:
    model = lenet()
    masks = masks_for(model)
    cb = SNFS(masks, delta_t=3, stop_step=11, alpha=0.5)
    result = train(model, build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(cb,))
    total = sum(int(m.sum()) for m in masks.values())
    assert (pd.DataFrame(result.history)["active_entries"] == total).all() and cb.events == 3
    assert all(bool((b[~cb.masks[n]] == 0).all()) for n, b in cb.buffers.items())  # reset after the last update


@pytest.mark.parametrize("method", ["rigl", "snfs"])
def test_resume_is_bitwise(tmp_path, method: str) -> None:  # type: ignore[no-untyped-def]
    splits = build_splits(DATA)
    steps = math.ceil(len(splits.train) / 100)

    def cb():  # type: ignore[no-untyped-def]
        cls = RigL if method == "rigl" else SNFS
        return cls(masks_for(lenet()), delta_t=4, stop_step=2 * steps, alpha=0.4)  # updates at 4 and 8

    def run(callbacks, where):  # type: ignore[no-untyped-def]
        return train(
            lenet(), splits, RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=callbacks, state_dir=where
        )

    whole_cb = cb()
    whole = run((whole_cb,), tmp_path / "whole")

    class Stop(Callback):
        def on_step_end(self, ctx) -> None:  # type: ignore[no-untyped-def]
            if ctx.step == steps + 3:  # inside epoch 2: the saved state is epoch 1's
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run((cb(), Stop()), tmp_path / "stopped")
    resumed_cb = cb()
    resumed = run((resumed_cb,), tmp_path / "stopped")
    assert steps == 6 and resumed.resumed_from_epoch == 1 and resumed_cb.events == whole_cb.events == 2
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(whole_cb.masks[n], resumed_cb.masks[n]) for n in whole_cb.masks)
    if method == "snfs":
        assert all(torch.equal(whole_cb.buffers[n], resumed_cb.buffers[n]) for n in whole_cb.buffers)


# ============================================================================ from a config block
def test_growth_sparsity_builds_erk_masks_and_resolves_epoch_and_stop_fraction() -> None:
    from sparselab.config.bundles import GrowthHparams, SnfsHparams
    from sparselab.dst.rigl import growth_sparsity

    model = lenet()
    names = sparse_tensors(model, "lenet300_100", "conv_fc")
    hp = GrowthHparams(delta_t=2, stop=0.5, dense_first=True)
    cb = growth_sparsity("rigl", model, names, 0.9, hp, torch.Generator().manual_seed(0))
    assert isinstance(cb, RigL) and names[0] not in cb.masks  # the dense first layer has no mask
    expected = sparsities(layer_densities_for(model, names, 0.1, "erk", dense_first=True))
    params = dict(model.named_parameters())
    for n, m in cb.masks.items():
        assert int(m.sum()) == int((1 - expected[n]) * params[n].numel() + 0.1)
    result = train(model, build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(cb,))
    assert (cb.delta_t, cb.stop_step) == (2, 6) and cb.events == 2  # 12 steps: updates at 2 and 4
    assert result.history[-1]["dropped_total"] == cb.dropped_total > 0

    snfs = growth_sparsity("snfs", lenet(), names, 0.9, SnfsHparams(densities="uniform"), torch.Generator())
    train(lenet(), build_splits(DATA), RECIPE, seeds=SeedHparams(), compute=COMPUTE, callbacks=(snfs,))
    assert isinstance(snfs, SNFS) and (snfs.delta_t, snfs.stop_step) == (6, 12) and snfs.events == 1  # after epoch 1
    with pytest.raises(ValueError, match="not both"):
        RigL(masks_for(lenet()), 2, 10, stop_fraction=0.5)


def test_snfs_defaults_are_sparse_learnings() -> None:
    """sparse_learning's Masking.init ('enforce_density_per_layer') gives every layer the global
    density: SNFS's defaults are uniform densities, an update after every epoch, prune rate 0.5
    decayed over the whole run; RigL's are ERK, every 100 steps until 75% of the run, 0.3."""
    from sparselab.config.bundles import GrowthHparams, SnfsHparams

    snfs, rigl = SnfsHparams(), GrowthHparams()
    assert (snfs.densities, snfs.delta_t, snfs.stop, snfs.alpha) == ("uniform", "epoch", 1.0, 0.5)
    assert (rigl.densities, rigl.delta_t, rigl.stop, rigl.alpha) == ("erk", 100, 0.75, 0.3)


def test_a_run_too_short_for_any_update_is_refused_before_training() -> None:
    one_epoch = TrainHparams.from_dict({**RECIPE.to_dict(), "epochs": 1})
    snfs = SNFS(masks_for(lenet()), "epoch", None, stop_fraction=1.0)  # the one update would be at the end
    with pytest.raises(ValueError, match=r"SNFS would make no mask update: the first update step, delta_t=6"):
        train(lenet(), build_splits(DATA), one_epoch, seeds=SeedHparams(), compute=COMPUTE, callbacks=(snfs,))
    assert snfs.events == 0
