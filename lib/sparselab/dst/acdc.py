"""AC/DC: alternating compressed / decompressed training (Peste et al., NeurIPS 2021; transfer notes §8.1).

The network trains dense for a warm-up, then alternates sparse and dense phases of equal length
(starting sparse), has one longer dense phase and ends with a long sparse phase. Entering a sparse
phase ("compression") keeps the largest ``(|w| + 1e-4)`` over all listed weights globally at the
target sparsity, at once (no ramp); entering a dense phase ("decompression") sets every mask back to
one, so pruned weights re-enter at exactly 0, and resets the SGD momentum. The final model is the
sparse one at the last epoch.

:func:`phase_calendar` gives the phase of every epoch. For 100 epochs it is the paper's recipe:
dense 0-9, sparse/dense every 5 epochs from 10 to 74 (S 10-14, D 15-19, ..., S 70-74), dense 75-84,
sparse 85-99: 50 sparse and 50 dense epochs. Longer runs follow the original's 150- and 200-epoch
configs: the warm-up, the 5-epoch phases, the last dense and the final sparse phase keep their
lengths and only the alternation grows (150: S 120-124, D 125-134, S 135-149). The same rule gives
every multiple of 10 epochs from 40 on. Lengths it cannot give (fewer than 40 epochs, or not a
multiple of 10: the alternation would not end on a whole sparse phase) scale the 100-epoch
calendar proportionally instead, so that tiny runs keep the pattern and the 50/50 balance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from ..sparsity.mask import Mask
from ..train.callbacks import Callback, TrainContext

__all__ = ["phase_calendar", "original_calendar_fits", "compress", "ACDC"]

Phase = Literal["dense", "sparse"]

# The original's phase lengths in epochs (IST-DASLab/ACDC configs/neurips/*_ep{100,150,200}*.yaml).
WARMUP, PHASE, LAST_DENSE, FINAL_SPARSE = 10, 5, 10, 15


def original_calendar_fits(epochs: int) -> bool:
    """Whether the original's fixed-length phases fill ``epochs`` exactly: at least one sparse
    phase in the alternation, which must end sparse (an odd number of 5-epoch phases)."""
    return epochs >= WARMUP + PHASE + LAST_DENSE + FINAL_SPARSE and epochs % (2 * PHASE) == 0


def _original_starts(epochs: int) -> list[tuple[int, Phase]]:
    """(first epoch, phase) of every phase: the original's triggers for a run of ``epochs``."""
    last_dense = epochs - FINAL_SPARSE - LAST_DENSE
    starts: list[tuple[int, Phase]] = [(0, "dense")]
    for i, start in enumerate(range(WARMUP, last_dense, PHASE)):  # sparse first
        starts.append((start, "sparse" if i % 2 == 0 else "dense"))
    return [*starts, (last_dense, "dense"), (epochs - FINAL_SPARSE, "sparse")]


def phase_calendar(epochs: int) -> list[Phase]:
    """The phase of each (0-based) epoch: the original's calendar where it fits
    (:func:`original_calendar_fits`), else the 100-epoch one scaled to ``epochs`` (boundaries
    rounded; at least 10 epochs so that every phase keeps at least one epoch)."""
    if epochs < 10:
        raise ValueError(f"AC/DC needs at least 10 epochs to fit its phases, got {epochs}")
    if original_calendar_fits(epochs):
        starts = _original_starts(epochs)
    else:
        starts = [(round(start * epochs / 100), phase) for start, phase in _original_starts(100)]
    calendar: list[Phase] = []
    for e in range(epochs):
        phase: Phase = "dense"
        for start, p in starts:
            if e >= start:
                phase = p
        calendar.append(phase)
    return calendar


def compress(model: torch.nn.Module, names: Sequence[str], sparsity: float, current: Mask | None = None) -> Mask:
    """Global magnitude compression: keep the ``ceil(N (1 - s))`` largest ``(|w| + 1e-4) * mask``
    over all listed weights (ties: lower position first)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"AC/DC sparsity must be in [0, 1), got {sparsity}")
    params = dict(model.named_parameters())
    stats = []
    for n in names:
        w = params[n].detach().abs().float().flatten().cpu() + 1e-4
        if current is not None and n in current:
            w = w * current[n].flatten().cpu().float()
        stats.append(w)
    flat = torch.cat(stats)
    keep = math.ceil(round(flat.numel() * (1.0 - sparsity), 6))  # ceil, not fooled by 0.30000000000000004
    order = torch.argsort(flat, descending=True, stable=True)
    on = torch.zeros(flat.numel(), dtype=torch.bool)
    on[order[:keep]] = True
    out, start = {}, 0
    for n in names:
        k = params[n].numel()
        out[n] = on[start : start + k].view(params[n].shape).to(params[n].device)
        start += k
    return Mask(out)


class ACDC(Callback):
    """Drives the phases: the calendar is read at every epoch start (the end of the previous one).

    ``names`` are the pruned weights, or a function picking them from the trained model (resolved
    when training starts, so a caller need not build the model twice)."""

    def __init__(
        self, names: Sequence[str] | Callable[[torch.nn.Module], Sequence[str]], sparsity: float, epochs: int
    ) -> None:
        self._resolve = names if callable(names) else None
        self.names = [] if callable(names) else list(names)
        self.sparsity = float(sparsity)
        self.calendar = phase_calendar(epochs)
        self.phase: Phase = "dense"
        self.compressions = 0

    def on_train_start(self, ctx: TrainContext) -> None:
        if self._resolve is not None:
            self.names = list(self._resolve(ctx.model))
        self._enter(ctx, self.calendar[min(ctx.epoch, len(self.calendar) - 1)])  # ctx.epoch: epochs done

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        row["acdc_phase"] = self.phase
        if ctx.epoch < len(self.calendar):
            self._enter(ctx, self.calendar[ctx.epoch])  # the phase of the next epoch (0-based index)

    def _enter(self, ctx: TrainContext, phase: Phase) -> None:
        if phase == self.phase and not (phase == "sparse" and ctx.mask is None):
            return
        if phase == "sparse":
            ctx.set_mask(compress(ctx.model, self.names, self.sparsity))
            self.compressions += 1
        else:
            ctx.set_mask(None)  # masks back to one: pruned weights re-enter at 0
            for state in ctx.optimizer.state.values():  # and the momentum restarts
                buf = state.get("momentum_buffer")
                if buf is not None:
                    buf.zero_()
        self.phase = phase

    def state_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "compressions": self.compressions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.phase, self.compressions = state["phase"], int(state["compressions"])
