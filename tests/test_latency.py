"""Paired latency (sparselab.metrics.latency): the logic on a fake clock that the models advance
(exact medians, ratios, interleaving, warm-up, modes), and on the real clock only comparisons
with a wide margin (a model that sleeps four times as long, one that does four times the work)."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from sparselab.metrics.latency import PairedLatency, paired_latency

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.hiccups: dict[int, float] = {}  # n-th reading -> seconds added before it
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        self.now += self.hiccups.get(self.readings, 0.0)
        return self.now


class Busy(nn.Module):
    """A model whose forward pass costs ``cost`` seconds of the fake clock; it logs what it saw."""

    def __init__(self, name: str, cost: float, clock: FakeClock, log: list) -> None:
        super().__init__()
        self.name, self.cost, self.clock, self.log = name, cost, clock, log
        self.lin = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.now += self.cost
        self.log.append((self.name, self.training, torch.is_inference_mode_enabled()))
        return self.lin(x)


def pair(dense_cost: float = 4e-3, pruned_cost: float = 1e-3) -> tuple[FakeClock, list, Busy, Busy]:
    clock, log = FakeClock(), []
    return clock, log, Busy("dense", dense_cost, clock, log), Busy("pruned", pruned_cost, clock, log)


def test_medians_and_their_ratio_are_exact_on_a_fake_clock() -> None:
    clock, log, dense, pruned = pair()
    lat = paired_latency(dense, pruned, torch.zeros(3, 2), repeats=5, min_sample_s=0.01, clock=clock)
    assert lat.calls == 10  # the faster model fills 10 ms with 10 calls of 1 ms
    assert lat.dense == pytest.approx(4e-3) and lat.pruned == pytest.approx(1e-3)
    assert lat.speedup == pytest.approx(4.0)
    assert len(lat.dense_s) == len(lat.pruned_s) == 5 and lat.batch_size == 3 and lat.device == "cpu"
    assert lat.to_dict("b3") == {
        "b3_dense_ms": pytest.approx(4.0),
        "b3_pruned_ms": pytest.approx(1.0),
        "b3_speedup": pytest.approx(4.0),
        "b3_threads": torch.get_num_threads(),
        "b3_device": "cpu",
    }


def test_warm_up_then_one_call_each_to_calibrate_then_samples_interleaved_in_alternating_order() -> None:
    clock, log, dense, pruned = pair()
    paired_latency(dense, pruned, torch.zeros(1, 2), repeats=4, warmup=2, min_sample_s=0.002, clock=clock)
    names = [name for name, _, _ in log]
    assert names[:4] == ["dense", "dense", "pruned", "pruned"]  # warm-up
    assert names[4:6] == ["dense", "pruned"]  # one timed call each: calls = 2 ms / 1 ms
    samples = [names[i] for i in range(6, len(names), 2)]
    assert all(names[i] == names[i + 1] for i in range(6, len(names), 2))  # 2 calls per sample
    assert samples == ["dense", "pruned", "pruned", "dense", "dense", "pruned", "pruned", "dense"]


def test_forward_passes_run_in_eval_and_inference_mode_and_the_modes_are_put_back() -> None:
    clock, log, dense, pruned = pair()
    dense.train()
    pruned.eval()
    paired_latency(dense, pruned, torch.zeros(1, 2), repeats=1, clock=clock)
    assert log and all(not training and inference for _, training, inference in log)
    assert dense.training and not pruned.training


def test_modes_are_put_back_when_a_forward_pass_fails() -> None:
    clock, log, dense, pruned = pair()
    dense.train()
    pruned.forward = lambda x: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        paired_latency(dense, pruned, torch.zeros(1, 2), clock=clock)
    assert dense.training


def test_a_hiccup_in_one_repeat_moves_neither_the_medians_nor_the_speedup() -> None:
    clock, log, dense, pruned = pair(dense_cost=2e-3, pruned_cost=1e-3)
    # readings: 2 calibration samples (4 readings), then 2 per sample; the 7th sample's end reading
    clock.hiccups = {4 + 2 * 7: 5.0}
    lat = paired_latency(dense, pruned, torch.zeros(1, 2), repeats=7, min_sample_s=0.0, clock=clock)
    assert max(lat.dense_s + lat.pruned_s) > 1.0  # the hiccup landed in one sample
    assert lat.dense == pytest.approx(2e-3) and lat.pruned == pytest.approx(1e-3)
    assert lat.speedup == pytest.approx(2.0)


def test_calls_per_sample_are_capped_and_a_clock_that_does_not_move_gives_the_cap() -> None:
    clock, _, dense, pruned = pair(dense_cost=1e-6, pruned_cost=1e-6)
    assert paired_latency(dense, pruned, torch.zeros(1, 2), repeats=1, max_calls=7, clock=clock).calls == 7
    clock, _, dense, pruned = pair(dense_cost=0.0, pruned_cost=0.0)
    assert paired_latency(dense, pruned, torch.zeros(1, 2), repeats=1, max_calls=5, clock=clock).calls == 5


def test_the_context_wraps_every_forward_pass() -> None:
    clock, log, dense, pruned = pair()
    entered = []

    class Ctx:
        def __enter__(self) -> None:
            entered.append(1)

        def __exit__(self, *exc: object) -> None:
            pass

    paired_latency(dense, pruned, torch.zeros(1, 2), repeats=2, warmup=1, context=Ctx, clock=clock)
    assert len(entered) == len(log)


@pytest.mark.parametrize("bad", [{"repeats": 0}, {"warmup": -1}, {"max_calls": 0}, {"min_sample_s": -1.0}])
def test_bad_settings_are_refused(bad: dict) -> None:
    clock, _, dense, pruned = pair()
    with pytest.raises(ValueError, match="need repeats >= 1"):
        paired_latency(dense, pruned, torch.zeros(1, 2), clock=clock, **bad)


def test_the_speedup_is_the_ratio_of_the_medians_the_table_prints() -> None:
    lat = PairedLatency((1.0, 2.0, 3.0), (1.0, 4.0, 1.0), calls=1, batch_size=1, threads=1, device="cpu")
    assert (lat.dense, lat.pruned, lat.speedup) == (2.0, 1.0, 2.0)  # the paired ratios' median would be 1.0
    assert PairedLatency((1.0,), (0.0,), 1, 1, 1, "cpu").speedup == float("inf")  # not a ZeroDivisionError


class Sleeps(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


class Repeats(nn.Module):
    """The same matmul ``times`` times: ``times`` times the work of ``Repeats(1)``."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times
        self.lin = nn.Linear(256, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.times):
            x = torch.tanh(self.lin(x))
        return x


def test_on_the_real_clock_a_model_that_sleeps_four_times_longer_is_slower() -> None:
    lat = paired_latency(Sleeps(0.004), Sleeps(0.001), torch.zeros(1), repeats=5, warmup=1, min_sample_s=0.0)
    assert lat.dense >= 0.004 and lat.pruned >= 0.001
    assert lat.speedup > 1.0


def test_on_the_real_clock_four_times_the_work_is_slower(device: torch.device) -> None:
    x = torch.randn(64, 256, device=device)
    dense, pruned = Repeats(4).to(device=device), Repeats(1).to(device=device)
    lat = paired_latency(dense, pruned, x, repeats=5, warmup=2, min_sample_s=0.005)
    assert lat.device == str(x.device) and lat.speedup > 1.0
