"""The training-loop side of dynamic sparse training: when masks change, and how (DSR notes §1.3, §2.1-2.2).

Each method is a :class:`~sparselab.train.callbacks.Callback` holding the *entry* masks of the sparse
tensors (element-wise, or per kernel row / whole kernel) and handing the engine their element-wise
:class:`~sparselab.sparsity.Mask`, which the engine enforces after every optimizer step and applies
to the gradients before it (inactive entries get no gradient, as with the original's masked forward
pass, so the momentum of a pruned weight only decays and a regrown weight starts at exactly 0).

Clock: a global iteration counter across epochs; a reallocation happens after the optimizer step of
every iteration that is a non-zero multiple of the current period P, where P is looked up from an
epoch-keyed step schedule (0-based epochs, the value of the largest key <= epoch), until the stop
epoch. Random choices come from one seeded generator whose state is part of the resume state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..train.callbacks import Callback, TrainContext
from .layers import to_mask
from .rewiring import Granularity, Regrowth, deepr_step, dsr_step, entry_magnitudes, expand, set_step

__all__ = ["StepSchedule", "DynamicSparsity", "DSR", "SET", "DeepR", "StaticSparse", "layer_densities"]


class StepSchedule:
    """An epoch-keyed step function, e.g. ``{0: 100, 25: 200, 80: 400, 140: 800}``."""

    def __init__(self, points: Mapping[int, float]) -> None:
        if not points or 0 not in {int(k) for k in points}:
            raise ValueError(f"a step schedule needs a value at epoch 0, got {dict(points)}")
        self.points = sorted((int(k), v) for k, v in points.items())

    def __call__(self, epoch: int) -> float:
        value = self.points[0][1]
        for start, v in self.points:
            if epoch >= start:
                value = v
        return value


def _big_std(p: torch.Tensor) -> float:
    """The original's "big new weights": N(0, sqrt(2 / (out * kh * kw))) for convs (He fan-out),
    N(0, 1 / sqrt(fan_in)) for Linear layers."""
    if p.dim() == 4:
        return math.sqrt(2.0 / (p.shape[0] * p.shape[2] * p.shape[3]))
    return 1.0 / math.sqrt(p.shape[1])


def layer_densities(masks: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {n: float(m.float().mean()) for n, m in masks.items()}


class DynamicSparsity(Callback):
    """Common part: entry masks, the element-wise mask handed to the engine, the clock and the
    resumable generator. Subclasses implement :meth:`reallocate`."""

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        period: StepSchedule | None,
        stop_epoch: int | None,
        seed: int,
        granularity: Granularity = "element",
    ) -> None:
        self.masks = {n: m.clone() for n, m in masks.items()}
        self.period, self.stop_epoch, self.granularity = period, stop_epoch, granularity
        self.generator = torch.Generator().manual_seed(seed)
        self.events = 0

    def on_train_start(self, ctx: TrainContext) -> None:
        ctx.set_mask(to_mask(ctx.model, self.masks))

    def active(self, ctx: TrainContext) -> bool:
        return self.stop_epoch is None or ctx.epoch - 1 < self.stop_epoch

    def on_step_end(self, ctx: TrainContext) -> None:
        if self.period is None or not self.active(ctx):
            return
        p = int(self.period(ctx.epoch - 1))
        if p > 0 and ctx.step % p == 0:
            self.masks = self.reallocate(ctx)
            self.events += 1
            ctx.set_mask(to_mask(ctx.model, self.masks))  # zeroes what was pruned; regrown entries are 0

    def reallocate(self, ctx: TrainContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def magnitudes(self, model: nn.Module) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        return {n: entry_magnitudes(params[n], self.granularity).cpu() for n in self.masks}

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        row["active_entries"] = sum(int(m.sum()) for m in self.masks.values())
        row["reallocations"] = self.events

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {n: m.clone() for n, m in self.masks.items()},
            "generator": self.generator.get_state(),
            "events": self.events,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = {n: m.clone() for n, m in state["masks"].items()}
        self.generator.set_state(state["generator"])
        self.events = int(state["events"])


class StaticSparse(DynamicSparsity):
    """Fixed random masks (the static sparse baseline)."""

    def __init__(self, masks: Mapping[str, torch.Tensor], seed: int = 0, granularity: Granularity = "element") -> None:
        super().__init__(masks, None, None, seed, granularity)


class DSR(DynamicSparsity):
    """Dynamic sparse reparameterization: global adaptive threshold H (start 1e-3), ``target``
    (Np) entries pruned per reallocation on average, survivor-proportional regrowth (or, with
    ``regrowth="per_layer"``, each tensor regrows what it lost)."""

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        period: StepSchedule,
        stop_epoch: int | None,
        seed: int,
        target: int,
        threshold: float = 1e-3,
        tolerance: float = 0.1,
        granularity: Granularity = "element",
        big_new_weights: bool = False,
        regrowth: Regrowth = "proportional",
    ) -> None:
        super().__init__(masks, period, stop_epoch, seed, granularity)
        self.regrowth = regrowth
        if target < 1:
            raise ValueError(f"DSR's Np (entries pruned per reallocation) must be >= 1, got {target}")
        self.target, self.threshold, self.tolerance = int(target), float(threshold), float(tolerance)
        self.big_new_weights = big_new_weights
        self.last_pruned = 0
        self._pending: dict[str, torch.Tensor] = {}  # DSR's regrown entries of this step (big_new_weights)

    def reallocate(self, ctx: TrainContext) -> dict[str, torch.Tensor]:
        res = dsr_step(
            self.magnitudes(ctx.model),
            self.masks,
            self.threshold,
            self.target,
            self.generator,
            self.tolerance,
            regrowth=self.regrowth,
        )
        self.threshold = res.threshold
        self.last_pruned = sum(res.pruned.values())
        if self.big_new_weights:
            self._pending = {n: res.masks[n] & ~self.masks[n] for n in res.masks}
        return res.masks

    def on_step_end(self, ctx: TrainContext) -> None:
        self._pending = {}
        super().on_step_end(ctx)
        if self._pending:  # after the new mask zeroed what it must: draw the grown weights
            params = dict(ctx.model.named_parameters())
            with torch.no_grad():
                for n, grown in self._pending.items():
                    p = params[n]
                    where = expand(grown, p).to(p.device)
                    fresh = torch.randn(p.shape, generator=self.generator).to(p.device, p.dtype) * _big_std(p)
                    p.copy_(torch.where(where, fresh, p))

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        super().on_epoch_end(ctx, row)
        row["dsr_threshold"] = self.threshold
        row["dsr_last_pruned"] = self.last_pruned

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "threshold": self.threshold, "last_pruned": self.last_pruned}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.threshold, self.last_pruned = float(state["threshold"]), int(state["last_pruned"])


class SET(DynamicSparsity):
    """Sparse evolutionary training as run in the DSR code: per tensor, the ``int(f*M) + 1``
    smallest active entries replaced by random ones on DSR's period schedule."""

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        period: StepSchedule,
        stop_epoch: int | None,
        seed: int,
        fraction: float,
        granularity: Granularity = "element",
    ) -> None:
        super().__init__(masks, period, stop_epoch, seed, granularity)
        self.fraction = float(fraction)

    def reallocate(self, ctx: TrainContext) -> dict[str, torch.Tensor]:
        return set_step(self.magnitudes(ctx.model), self.masks, self.fraction, self.generator).masks


class DeepR(DynamicSparsity):
    """DeepR (Bellec et al. 2018) as in the DSR code: every iteration, Gaussian noise of std
    ``sqrt(2 * eta * T)`` (T from an epoch-keyed temperature schedule) and an L1 term ``c * sign(w)``
    are added to the gradients of the active entries; after the step, connections whose sign
    changed since the previous iteration are removed and as many random ones grown in the same
    tensor. Element-wise masks only."""

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        temperature: StepSchedule,
        stop_epoch: int | None,
        seed: int,
        eta: float = 0.01,
        l1: float = 1e-5,
    ) -> None:
        super().__init__(masks, StepSchedule({0: 1}), stop_epoch, seed, "element")
        self.temperature, self.eta, self.l1 = temperature, float(eta), float(l1)
        self.signs: dict[str, torch.Tensor] = {}
        self.removed = 0

    def on_train_start(self, ctx: TrainContext) -> None:
        super().on_train_start(ctx)
        if not self.signs:  # as in the original: the signs of the initial (masked) weights
            params = dict(ctx.model.named_parameters())
            self.signs = {n: torch.where(m, torch.sign(params[n].detach().cpu()), 0.0) for n, m in self.masks.items()}

    def on_before_step(self, ctx: TrainContext) -> None:
        if not self.active(ctx):
            return
        std = math.sqrt(2.0 * self.eta * float(self.temperature(ctx.epoch - 1)))
        params = dict(ctx.model.named_parameters())
        with torch.no_grad():
            for n, m in self.masks.items():
                p = params[n]
                if p.grad is None:
                    continue
                noise = torch.randn(p.shape, generator=self.generator).to(p.device, p.dtype) * std
                on = m.to(p.device, p.dtype)
                p.grad.add_((noise + self.l1 * torch.sign(p.detach())) * on)

    def reallocate(self, ctx: TrainContext) -> dict[str, torch.Tensor]:
        params = dict(ctx.model.named_parameters())
        weights = {n: params[n].detach().cpu() for n in self.masks}
        res, self.signs = deepr_step(weights, self.masks, self.signs, self.generator)
        self.removed += sum(res.removed.values())
        return res.masks

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        super().on_epoch_end(ctx, row)
        row["deepr_removed"] = self.removed

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "signs": {n: s.clone() for n, s in self.signs.items()}, "removed": self.removed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.signs = {n: s.clone() for n, s in state["signs"].items()}
        self.removed = int(state["removed"])
