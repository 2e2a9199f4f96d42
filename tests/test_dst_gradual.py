"""Gradual ("compressed sparse") pruning: clock, schedules, per-layer events, MNIST output rule."""

from __future__ import annotations

import math

import pytest
import torch

from sparselab.dst import gradual
from sparselab.dst.gradual import (
    event_epochs,
    event_fraction,
    event_fractions,
    is_event_epoch,
    n_to_prune,
    per_layer_targets,
    prune_event,
    sparsity_after,
    total_epochs,
)
from sparselab.sparsity.magnitude import remaining_to_total
from sparselab.sparsity.mask import Mask

SCHEDULES = ["cubic", "exponential"]


# ---------------------------------------------------------------------------------- clock
def test_event_epochs_and_total_of_the_yaml_setups():
    assert event_epochs(0, 2, 20) == list(range(0, 39, 2))  # 0, 2, ..., 38
    assert total_epochs(0, 2, 20, 10) == 48
    # MNIST: start after epoch 1, every 2, 10 iterations, 20 post-prune epochs -> 39 epochs
    assert event_epochs(1, 2, 10) == list(range(1, 20, 2))
    assert total_epochs(1, 2, 10, 20) == 39


def test_is_event_epoch_is_the_reference_per_epoch_test():
    start, freq, iters = 3, 2, 4
    simulated, done = [], 0
    for e in range(total_epochs(start, freq, iters, 5)):
        if e >= start and (e - start) % freq == 0 and done < iters:
            simulated.append(e)
            done += 1
    assert simulated == event_epochs(start, freq, iters)
    assert [e for e in range(40) if is_event_epoch(e, start, freq, iters)] == simulated
    # every event falls inside the run
    assert max(event_epochs(0, 2, 20)) < total_epochs(0, 2, 20, 10)


@pytest.mark.parametrize("args", [(-1, 2, 5), (0, 0, 5), (0, 2, 0), (0, 2.5, 3)])
def test_clock_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        event_epochs(*args)
    with pytest.raises(ValueError):
        total_epochs(*args, 10)


# ---------------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("target", [0.0, 0.5, 0.9, 0.98])
def test_schedule_endpoints(schedule, target):
    assert sparsity_after(0, 20, target, schedule) == 0.0
    assert sparsity_after(20, 20, target, schedule) == pytest.approx(target, abs=1e-15)


def test_schedule_values_by_hand():
    # exponential, s_f = 0.75, n = 4: density 0.25^(j/4)
    assert sparsity_after(2, 4, 0.75, "exponential") == pytest.approx(0.5, abs=1e-15)
    assert sparsity_after(1, 4, 0.75, "exponential") == pytest.approx(1 - math.sqrt(0.5), abs=1e-15)
    # cubic, s_f = 0.8, n = 4: 0.8 * (1 - (1 - j/4)^3)
    assert sparsity_after(1, 4, 0.8, "cubic") == pytest.approx(0.8 * (1 - 27 / 64), abs=1e-15)  # 0.4625
    assert sparsity_after(2, 4, 0.8, "cubic") == pytest.approx(0.7, abs=1e-15)
    assert sparsity_after(3, 4, 0.8, "cubic") == pytest.approx(0.7875, abs=1e-15)
    # cubic prunes ahead of exponential early on (same endpoints)
    assert sparsity_after(1, 4, 0.75, "cubic") > sparsity_after(1, 4, 0.75, "exponential")


def test_event_fractions_by_hand():
    assert event_fraction(1, 4, 0.75, "exponential") == pytest.approx(1 - 0.25**0.25, abs=1e-15)
    assert event_fraction(4, 4, 0.75, "exponential") == event_fraction(1, 4, 0.75, "exponential")
    assert event_fraction(1, 4, 0.8, "cubic") == pytest.approx(0.4625, abs=1e-15)  # d_0 = 1
    assert event_fraction(2, 4, 0.8, "cubic") == pytest.approx(1 - 0.3 / 0.5375, abs=1e-15)
    assert event_fraction(4, 4, 0.8, "cubic") == pytest.approx(1 - 0.2 / 0.2125, abs=1e-15)
    # dsr.md writes cubic 0-based: p = 1 - d_{j+1}/d_j with d_j = 1 - s_f(1 - (1 - j/n)^3)
    d = lambda j: 1 - 0.8 * (1 - (1 - j / 4) ** 3)  # noqa: E731
    for j0 in range(4):
        assert event_fraction(j0 + 1, 4, 0.8, "cubic") == pytest.approx(1 - d(j0 + 1) / d(j0), abs=1e-15)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("target,n", [(0.5, 1), (0.9, 20), (0.98, 10), (0.8, 7), (0.0, 3)])
def test_compounded_fractions_reproduce_the_schedule(schedule, target, n):
    s = 0.0
    for j in range(1, n + 1):
        p = event_fraction(j, n, target, schedule)
        assert 0.0 <= p < 1.0
        s = remaining_to_total(s, p)
        assert s == pytest.approx(sparsity_after(j, n, target, schedule), abs=1e-12)
    assert s == pytest.approx(target, abs=1e-12)


def test_cubic_prunes_less_each_event_and_event_fractions_maps_layers():
    # Zhu & Gupta: the dense-relative amount removed per event decreases monotonically
    s = [sparsity_after(j, 20, 0.9, "cubic") for j in range(21)]
    steps = [b - a for a, b in zip(s, s[1:])]
    assert all(a > b > 0 for a, b in zip(steps, steps[1:]))
    # ...while the share of the survivors is not monotone (rises, then falls towards 0)
    ps = [event_fraction(j, 20, 0.9, "cubic") for j in range(1, 21)]
    assert max(ps) > ps[0] > ps[-1] and ps[-1] < 0.002
    out = event_fractions(3, 20, {"conv": 0.9, "fc": 0.5}, "exponential")
    assert out == {n: event_fraction(3, 20, t, "exponential") for n, t in [("conv", 0.9), ("fc", 0.5)]}


@pytest.mark.parametrize("target", [-0.1, 1.0, 1.5])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedules_reject_targets_outside_unit_interval(target, schedule):
    with pytest.raises(ValueError, match="target"):
        sparsity_after(1, 4, target, schedule)
    with pytest.raises(ValueError, match="target"):
        event_fraction(1, 4, target, schedule)


def test_schedules_reject_bad_n_j_and_schedule():
    for n in (0, -3):
        with pytest.raises(ValueError, match="n="):
            sparsity_after(0, n, 0.5, "cubic")
        with pytest.raises(ValueError, match="n="):
            event_fraction(1, n, 0.5, "exponential")
    with pytest.raises(ValueError, match="j="):
        sparsity_after(5, 4, 0.5, "cubic")
    with pytest.raises(ValueError, match="j="):
        event_fraction(0, 4, 0.5, "cubic")  # events are 1-based
    with pytest.raises(ValueError, match="schedule"):
        sparsity_after(1, 4, 0.5, "linear")
    with pytest.raises(ValueError, match="schedule"):
        event_fraction(1, 4, 0.5, "Cubic")


# ---------------------------------------------------------------------------------- the event
def _layers(seed: int = 0) -> tuple[dict[str, torch.Tensor], Mask]:
    g = torch.Generator().manual_seed(seed)
    weights = {
        "a": torch.randn(7, 9, generator=g),
        "b": torch.randn(4, 3, 3, 3, generator=g) * 1e4,  # huge: would lose nothing under a global rank
        "c": torch.randint(-3, 4, (50,), generator=g).float(),  # many ties
    }
    keep = {n: torch.rand(w.shape, generator=g) > 0.3 for n, w in weights.items()}
    # inactive entries hold large values (DSR-style stale weights): must never come back
    for n, w in weights.items():
        w[~keep[n]] = 1e6
    return weights, Mask(keep)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.37, 0.5, 0.99, 1.0])
def test_prune_event_matches_brute_force_per_layer(p):
    weights, mask = _layers()
    new = prune_event(weights, mask, {n: p for n in mask})
    for n in mask:
        old_m, new_m = mask[n].flatten(), new[n].flatten()
        m_active = int(old_m.sum())
        expected_k = min(int(p * m_active) + 1, m_active - 1)
        assert int((old_m & ~new_m).sum()) == expected_k  # exactly int(p*M)+1 (capped)
        assert not bool((new_m & ~old_m).any())  # nothing re-activated
        assert int(new_m.sum()) >= 1
        # brute force: active entries sorted by (|w|, flat index), first k removed
        w = weights[n].flatten().abs()
        active_idx = [i for i in range(w.numel()) if old_m[i]]
        ranked = sorted(active_idx, key=lambda i: (float(w[i]), i))
        removed = set(ranked[:expected_k])
        assert {i for i in range(w.numel()) if old_m[i] and not new_m[i]} == removed
    assert new["b"].sum() < mask["b"].sum()  # huge layer still loses its share


def test_prune_event_ties_go_to_lower_index_and_is_deterministic():
    w = {"x": torch.tensor([1.0, -1.0, 1.0, 2.0, 1.0])}
    m = Mask({"x": torch.ones(5, dtype=torch.bool)})
    new = prune_event(w, m, {"x": 0.4})  # int(0.4*5)+1 = 3
    assert new["x"].tolist() == [False, False, False, True, True]
    assert prune_event(w, m, {"x": 0.4}) == new


def test_prune_event_plus_one_and_never_empties_a_layer():
    w = {"one": torch.tensor([5.0, 0.1]), "two": torch.tensor([3.0, 1.0]), "full": torch.randn(10)}
    m = Mask({"one": torch.tensor([True, False]), "two": torch.ones(2, dtype=bool), "full": torch.ones(10, dtype=bool)})
    new = prune_event(w, m, {"one": 1.0, "two": 1.0, "full": 0.0})
    assert new["one"].tolist() == [True, False]  # last survivor kept
    assert new["two"].tolist() == [True, False]  # p = 1 still leaves one
    assert int(new["full"].sum()) == 9  # p = 0 still removes one (the +1)
    # repeated events converge to one survivor, never zero
    for _ in range(20):
        new = prune_event(w, new, {"full": 0.9})
    assert int(new["full"].sum()) == 1
    assert n_to_prune(0.5, 0) == 0 and n_to_prune(0.5, 1) == 0 and n_to_prune(0.0, 100) == 1


def test_prune_event_leaves_unlisted_layers_and_checks_inputs():
    weights, mask = _layers()
    new = prune_event(weights, mask, {"a": 0.5})
    assert torch.equal(new["b"], mask["b"]) and torch.equal(new["c"], mask["c"])
    assert new["a"].shape == mask["a"].shape and new["a"].dtype == torch.bool
    with pytest.raises(KeyError, match="zz"):
        prune_event(weights, mask, {"zz": 0.5})
    with pytest.raises(ValueError, match="fraction"):
        prune_event(weights, mask, {"a": 1.5})
    with pytest.raises(ValueError, match="a"):
        prune_event({**weights, "a": torch.zeros(3)}, mask, {"a": 0.5})


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_running_the_schedule_reaches_the_target_within_the_plus_ones(schedule):
    n, target = 10, 0.9
    weights = {"w": torch.randn(100, 100, generator=torch.Generator().manual_seed(1))}
    mask = Mask({"w": torch.ones(100, 100, dtype=torch.bool)})
    for j in range(1, n + 1):
        mask = prune_event(weights, mask, {"w": event_fraction(j, n, target, schedule)})
        intended = sparsity_after(j, n, target, schedule)
        # realised runs ahead by at most j entries (one +1 per event, plus int() truncation per event)
        assert intended <= mask.sparsity + 1e-12 <= intended + 2 * j / 10_000 + 1e-12
    # the survivors are the largest |w| overall (layerwise magnitude pruning composes)
    kept = weights["w"].abs()[mask["w"]]
    dropped = weights["w"].abs()[~mask["w"]]
    assert kept.min() >= dropped.max()


# ---------------------------------------------------------------------------------- MNIST rule
LENET = {"fc1.weight": 784 * 300, "fc2.weight": 300 * 100, "fc3.weight": 100 * 10}


@pytest.mark.parametrize("target", [0.91, 0.95, 0.98, 0.99])
def test_mnist_output_layer_capped_and_total_matches(target):
    t = per_layer_targets(LENET, target, "fc3.weight")
    assert t["fc3.weight"] == 0.9  # 100 of 1000 weights kept
    assert t["fc1.weight"] == t["fc2.weight"] > target
    total = sum(LENET.values())
    assert sum(t[n] * LENET[n] for n in LENET) / total == pytest.approx(target, abs=1e-12)
    pruned = sum(round(t[n] * LENET[n]) for n in LENET)
    assert abs(pruned - round(target * total)) <= len(LENET)  # only per-layer rounding differs


def test_per_layer_targets_cap_only_above_it():
    assert per_layer_targets(LENET, 0.9, "fc3.weight") == {n: 0.9 for n in LENET}
    assert per_layer_targets(LENET, 0.5, "fc3.weight") == {n: 0.5 for n in LENET}
    assert per_layer_targets(LENET, 0.98, None) == {n: 0.98 for n in LENET}
    t = per_layer_targets(LENET, 0.96, "fc3.weight", output_cap=0.95)
    assert t["fc3.weight"] == 0.95


def test_per_layer_targets_errors():
    with pytest.raises(ValueError, match="target"):
        per_layer_targets(LENET, 1.0, "fc3.weight")
    with pytest.raises(ValueError, match="target"):
        per_layer_targets(LENET, -0.1, None)
    with pytest.raises(KeyError, match="fc4"):
        per_layer_targets(LENET, 0.98, "fc4.weight")
    with pytest.raises(ValueError, match="only layer"):
        per_layer_targets({"out": 1000}, 0.98, "out")
    with pytest.raises(ValueError, match="below 1"):
        per_layer_targets({"a": 10, "out": 1000}, 0.99, "out")  # rest would need 9.99


# ---------------------------------------------------------------------------------- the AC/DC repo's GMP ramp
# IST-DASLab/ACDC, transcribed: policies/manager.py schedule_prunes_and_recycles (pruning epochs
# range(start, end, freq), run in on_epoch_begin, i.e. before that epoch's training) and
# policies/pruners.py GradualPruner._polynomial_schedule (the level of each step).
def _acdc_pruning_epochs(start: int, freq: int, end: int) -> list[int]:
    return list(range(start, end, freq))


def _acdc_polynomial(epoch: int, start: int, end: int, initial: float, target: float, degree: float = 3) -> float:
    scale = target - initial
    progress = min(float(epoch - start) / (end - start), 1.0)
    return target - scale * (1.0 - progress) ** degree


def test_gmp_ramp_of_the_acdc_config_starts_at_0_05_and_stops_short_of_the_target():
    # imagenet_resnet50_gmp_sp90.yaml: epochs [1, 5, 40], initial_sparsity 0.05, target 0.9 (issue 15)
    steps = gradual.ramp_steps(1, 5, 40, final_step=False)
    assert steps == [1, 6, 11, 16, 21, 26, 31, 36] == _acdc_pruning_epochs(1, 5, 40)
    levels = [gradual.ramp_sparsity(e, 0.9, start=1, end=40, initial_sparsity=0.05, degree=3) for e in steps]
    assert levels == pytest.approx([0.050, 0.337, 0.551, 0.702, 0.802, 0.861, 0.890, 0.899], abs=5e-4)
    assert levels[-1] < 0.8995  # the last step is at progress 35/39: 89.9%, not 90%
    # not sparselab's former ramp s_f (1 - (1 - j/8)^3) from 0: 0.297, 0.520, ..., 0.900
    assert levels[0] != pytest.approx(sparsity_after(1, 8, 0.9, "cubic"), abs=0.1)


@pytest.mark.parametrize("target", [0.8, 0.95, 0.98])
@pytest.mark.parametrize(
    ("start", "freq", "end", "initial", "degree"),
    [(1, 5, 40, 0.05, 3), (0, 2, 9, 0.0, 3), (3, 4, 20, 0.2, 1), (2, 3, 11, 0.1, 2.5)],
)
def test_gmp_ramp_is_the_acdc_rule_at_any_target_and_clock(target, start, freq, end, initial, degree):
    steps = gradual.ramp_steps(start, freq, end, final_step=False)
    assert steps == _acdc_pruning_epochs(start, freq, end)
    got = [
        gradual.ramp_sparsity(e, target, start=start, end=end, initial_sparsity=initial, degree=degree) for e in steps
    ]
    assert got == pytest.approx(
        [_acdc_polynomial(e, start, end, initial, target, degree) for e in steps], rel=1e-12, abs=1e-15
    )
    assert got == sorted(got) and got[0] == pytest.approx(initial) and got[-1] < target
    # final_step: Zhu & Gupta's last step at `end` (progress 1) lands on the target
    with_final = gradual.ramp_steps(start, freq, end, final_step=True)
    assert with_final == steps + [end]
    assert gradual.ramp_sparsity(
        end, target, start=start, end=end, initial_sparsity=initial, degree=degree
    ) == pytest.approx(target)


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9])
@pytest.mark.parametrize("n", [1, 4, 8])
def test_gmp_ramp_from_0_with_a_final_step_is_the_former_cubic_ramp(target, n):
    # the transfer default (start 0, freq 1, end n): steps before epochs 0..n = after epochs -, 0..n-1,
    # at the levels of the DSR-style cubic schedule s_f (1 - (1 - j/n)^3)
    steps = gradual.ramp_steps(0, 1, n, final_step=True)
    assert steps == list(range(n + 1))
    got = [gradual.ramp_sparsity(e, target, start=0, end=n, initial_sparsity=0.0, degree=3) for e in steps]
    assert got == pytest.approx([sparsity_after(j, n, target, "cubic") for j in range(n + 1)], abs=1e-12)


@pytest.mark.parametrize("args", [(-1, 5, 40), (1, 0, 40), (5, 5, 5), (6, 1, 5), (1.5, 5, 40)])
def test_gmp_ramp_rejects_bad_clocks(args):
    with pytest.raises(ValueError):
        gradual.ramp_steps(*args, final_step=False)


def test_gmp_ramp_rejects_bad_levels():
    with pytest.raises(ValueError, match="initial"):
        gradual.ramp_sparsity(1, 0.5, start=1, end=40, initial_sparsity=0.6, degree=3)  # a ramp that would shrink
    with pytest.raises(ValueError, match="degree"):
        gradual.ramp_sparsity(1, 0.5, start=1, end=40, initial_sparsity=0.0, degree=0)
    with pytest.raises(ValueError, match="before"):
        gradual.ramp_sparsity(0, 0.5, start=1, end=40, initial_sparsity=0.0, degree=3)
