"""Measured inference latency of a pruned model against its dense model, in the same run.

A speed-up in FLOPs (:func:`sparselab.metrics.complexity.theoretical_speedup`) says what a kernel
that skips the removed work could gain; only a clock says what this hardware gains. The two models
are timed in one call, interleaved (dense, pruned, then pruned, dense, ...) so that a busy
neighbour or a clock-speed change hits both alike, and the speed-up is the ratio of their median
times over the repeats (a hiccup in one repeat moves neither median; the ratio agrees with the two
latencies a table prints beside it).

Each forward pass runs in eval mode under ``torch.inference_mode`` (the models' modes are put
back afterwards), after warm-up calls (allocator, kernel choice, lazy initialisation); a timed
sample is ``calls`` forward passes in a row, as many as it takes for the faster model to fill
``min_sample_s`` (a millisecond forward pass is below the clock's and the scheduler's noise), with
the device synchronised before and after on CUDA, where calls only queue work. Threads are the
caller's (a job's ``threads``, :func:`torch.set_num_threads`); the result records how many ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
from torch import nn

__all__ = ["PairedLatency", "paired_latency"]


@dataclasses.dataclass(frozen=True)
class PairedLatency:
    """Seconds per forward pass of the dense and the pruned model, one entry per repeat (paired)."""

    dense_s: tuple[float, ...]
    pruned_s: tuple[float, ...]
    calls: int  # forward passes per timed sample
    batch_size: int
    threads: int  # torch's intra-op threads during the measurement
    device: str

    @property
    def dense(self) -> float:
        """Median seconds per forward pass of the dense model."""
        return statistics.median(self.dense_s)

    @property
    def pruned(self) -> float:
        """Median seconds per forward pass of the pruned model."""
        return statistics.median(self.pruned_s)

    @property
    def speedup(self) -> float:
        """Median dense time / median pruned time (> 1: the pruned model is faster)."""
        pruned = self.pruned
        return self.dense / pruned if pruned > 0 else math.inf

    def to_dict(self, prefix: str = "latency") -> dict[str, float | int | str]:
        """Flat fields for a summary or a records row (milliseconds)."""
        return {
            f"{prefix}_dense_ms": 1e3 * self.dense,
            f"{prefix}_pruned_ms": 1e3 * self.pruned,
            f"{prefix}_speedup": self.speedup,
            f"{prefix}_threads": self.threads,
            f"{prefix}_device": self.device,
        }


def _synchronizer(device: torch.device) -> Callable[[], None]:
    """Wait for queued device work (CUDA); a no-op where calls return when their work is done."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def paired_latency(
    dense: nn.Module,
    pruned: nn.Module,
    x: torch.Tensor,
    *,
    repeats: int = 9,
    warmup: int = 2,
    min_sample_s: float = 0.01,
    max_calls: int = 100,
    context: Callable[[], AbstractContextManager] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> PairedLatency:
    """Time ``dense(x)`` against ``pruned(x)`` (both already on ``x``'s device), interleaved.

    ``context`` wraps every forward pass (e.g. a placement's bf16 autocast); ``clock`` is for
    tests (a fake clock that the models advance)."""
    if repeats < 1 or warmup < 0 or max_calls < 1 or min_sample_s < 0:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0, max_calls >= 1, min_sample_s >= 0; got {repeats}, {warmup}, "
            f"{max_calls}, {min_sample_s}"
        )
    sync = _synchronizer(x.device)
    enter = context or contextlib.nullcontext
    models = (dense, pruned)
    modes = [m.training for m in models]

    def sample(model: nn.Module, calls: int) -> float:
        sync()
        t0 = clock()
        for _ in range(calls):
            with enter():
                model(x)
        sync()
        return (clock() - t0) / calls

    times: tuple[list[float], list[float]] = ([], [])
    try:
        for m in models:
            m.eval()
        with torch.inference_mode():
            for m in models:
                for _ in range(warmup):
                    with enter():
                        m(x)
            sync()
            fastest = min(sample(m, 1) for m in models)
            calls = max_calls if fastest <= 0 else min(max_calls, max(1, math.ceil(min_sample_s / fastest)))
            for r in range(repeats):
                order: Sequence[int] = (0, 1) if r % 2 == 0 else (1, 0)
                for i in order:
                    times[i].append(sample(models[i], calls))
    finally:
        for m, training in zip(models, modes):
            m.train(training)
    return PairedLatency(
        dense_s=tuple(times[0]),
        pruned_s=tuple(times[1]),
        calls=calls,
        batch_size=int(x.shape[0]),
        threads=torch.get_num_threads(),
        device=str(x.device),
    )
