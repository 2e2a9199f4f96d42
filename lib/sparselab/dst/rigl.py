"""RigL and SNFS in the training engine: when their masks change, and where the growth signal comes from.

Clock: ``ctx.step`` counts optimizer steps. A mask update follows the optimizer step of every step
``t`` with ``t % delta_t == 0`` and ``0 < t < stop_step``; the drop fraction (RigL) or prune rate
(SNFS) at ``t`` is :func:`.growth.cosine_fraction` ``(t, alpha, stop_step)``. ``delta_t="epoch"``
(SNFS's default: after every epoch) and ``stop_fraction`` (RigL: 0.75 of the run) are resolved
against the run's steps when training starts; :func:`growth_sparsity` builds either callback from a
config block (:class:`~sparselab.config.bundles.GrowthHparams`). The update sees the
weights after that step's optimizer update (magnitudes) and the growth signal of that step.

Dense gradient (RigL): the engine keeps inactive weights at exactly 0 (the mask is enforced after
every step) and runs the forward on the stored weights, which then equal ``w * m``; so right after
backward ``p.grad`` is the gradient w.r.t. the masked weight, i.e. the dense gradient that RigL
ranks. The engine zeroes the masked entries' gradients before the optimizer step, so the callbacks
read ``p.grad`` in :meth:`~sparselab.train.callbacks.Callback.on_after_backward`, before that (and
after DDP has averaged it, so every process grows the same entries); RigL copies it (on the device,
no host sync) only on update steps.

Dense momentum (SNFS): because the engine masks gradients, the optimizer's momentum buffers are 0
at never-active entries, which would make momentum growth meaningless. SNFS therefore keeps its
own buffer per sparse tensor with the optimizer's recursion over the *dense* gradient,
``b <- mu·b + (1 - dampening)·(g + wd·w)`` (``mu``, ``dampening``, ``wd`` from the tensor's param
group), as sparse_learning's optimizer sees it (it masks weights, not gradients); after every
mask update the buffer is zeroed at the inactive entries (where sparse_learning's ``reset_momentum``
runs; it fills them with the active entries' mean momentum instead: ``docs/dst.md``). It is part of
the resume state.

Grown entries start at 0 (they were inactive, so held at 0) and with zero optimizer momentum; an
entry dropped and grown again in the same update stays active with its value. Host syncs happen
only at update steps (the masks are chosen on the CPU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from ..config.bundles import GrowthHparams
from ..train.callbacks import TrainContext
from .callbacks import DynamicSparsity
from .densities import layer_densities_for, sparsities
from .growth import GrowthResult, cosine_fraction, rigl_step, snfs_step
from .layers import Granularity, entry_magnitudes, expand, initial_masks, to_mask

__all__ = ["GrowthSparsity", "RigL", "SNFS", "growth_sparsity"]


class GrowthSparsity(DynamicSparsity):
    """Common part of RigL and SNFS: the step clock, the cosine fraction, applying an update."""

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        delta_t: int | Literal["epoch"],
        stop_step: int | None,
        alpha: float,
        granularity: Granularity = "element",
        *,
        stop_fraction: float | None = None,
    ) -> None:
        super().__init__(masks, None, None, 0, granularity)
        if (stop_step is None) == (stop_fraction is None):
            raise ValueError("give the last update as stop_step (steps) or stop_fraction (of the run), not both")
        if (delta_t != "epoch" and delta_t < 1) or (stop_step is not None and stop_step < 1):
            raise ValueError(f"delta_t and stop_step must be >= 1, got {delta_t} and {stop_step}")
        if stop_fraction is not None and not 0.0 < stop_fraction <= 1.0:
            raise ValueError(f"stop_fraction must be in (0, 1], got {stop_fraction}")
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"the initial drop fraction alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)
        # "epoch" and stop_fraction are resolved against the run's length in on_train_start
        self._delta_t, self._stop_fraction = delta_t, stop_fraction
        self.delta_t = int(delta_t) if delta_t != "epoch" else 0
        self.stop_step = int(stop_step) if stop_step is not None else 0
        self.dropped_total = 0  # entries dropped over all updates (those grown again at once included)

    def on_train_start(self, ctx: TrainContext) -> None:
        super().on_train_start(ctx)
        if self._delta_t == "epoch":
            self.delta_t = ctx.steps_per_epoch
        if self._stop_fraction is not None:
            self.stop_step = max(1, round(self._stop_fraction * ctx.hparams.epochs * ctx.steps_per_epoch))
        if self.last_update == 0:  # before any step: a run that would silently be static sparse training
            raise ValueError(
                f"{type(self).__name__} would make no mask update: the first update step, delta_t={self.delta_t}, "
                f"is not before the stop step {self.stop_step} of this run ({ctx.hparams.epochs} epochs x "
                f"{ctx.steps_per_epoch} steps); lower delta_t, raise stop or train longer"
            )

    @property
    def last_update(self) -> int:
        """The last step with a mask update (0: none)."""
        return (self.stop_step - 1) // self.delta_t * self.delta_t

    def due(self, step: int) -> bool:
        return 0 < step < self.stop_step and step % self.delta_t == 0

    def fraction(self, step: int) -> float:
        return cosine_fraction(step, self.alpha, self.stop_step)

    def update(self, ctx: TrainContext, fraction: float) -> GrowthResult:
        raise NotImplementedError

    def on_step_end(self, ctx: TrainContext) -> None:
        if not self.due(ctx.step):
            return
        res = self.update(ctx, self.fraction(ctx.step))
        new_entries = {n: res.masks[n] & ~self.masks[n] for n in res.masks}
        self.masks = res.masks
        self.events += 1
        self.dropped_total += sum(int(d.sum()) for d in res.dropped.values())
        ctx.set_mask(to_mask(ctx.model, self.masks))  # zeroes the dropped entries; grown ones are already 0
        params = dict(ctx.model.named_parameters())
        with torch.no_grad():
            for n, fresh in new_entries.items():
                buf = ctx.optimizer.state.get(params[n], {}).get("momentum_buffer")
                if buf is not None and fresh.any():
                    buf.masked_fill_(expand(fresh.to(buf.device), buf), 0.0)
        self.after_update(ctx)

    def after_update(self, ctx: TrainContext) -> None:
        pass

    def reallocate(self, ctx: TrainContext) -> dict[str, torch.Tensor]:  # the base class's hook; unused
        raise NotImplementedError("RigL and SNFS update their masks in on_step_end")

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        super().on_epoch_end(ctx, row)
        row["dropped_total"] = self.dropped_total

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "dropped_total": self.dropped_total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.dropped_total = int(state["dropped_total"])


class RigL(GrowthSparsity):
    """RigL: per tensor, drop ``int(f(t)·n)`` smallest |w| and grow as many largest |dense gradient|."""

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        delta_t: int | Literal["epoch"],
        stop_step: int | None,
        alpha: float = 0.3,
        granularity: Granularity = "element",
        *,
        stop_fraction: float | None = None,
    ) -> None:
        super().__init__(masks, delta_t, stop_step, alpha, granularity, stop_fraction=stop_fraction)
        self._grads: dict[str, torch.Tensor] = {}

    def on_after_backward(self, ctx: TrainContext) -> None:
        if not self.due(ctx.step + 1):  # ctx.step counts the steps done: this one is step + 1
            return
        params = dict(ctx.model.named_parameters())
        self._grads = {}
        for n in self.masks:
            grad = params[n].grad
            self._grads[n] = grad.detach().clone() if grad is not None else torch.zeros_like(params[n])

    def update(self, ctx: TrainContext, fraction: float) -> GrowthResult:
        if not self._grads:
            raise RuntimeError("RigL's update step has no dense gradient (on_after_backward was not called)")
        grads = {n: entry_magnitudes(g, self.granularity).cpu() for n, g in self._grads.items()}
        self._grads = {}
        return rigl_step(self.magnitudes(ctx.model), grads, self.masks, fraction)


class SNFS(GrowthSparsity):
    """Sparse momentum: drop ``ceil(f(t)·n)`` smallest |w| per tensor, regrow the total across
    tensors by their mean |momentum| of active entries, at the largest |dense momentum|."""

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        delta_t: int | Literal["epoch"],
        stop_step: int | None,
        alpha: float = 0.5,
        granularity: Granularity = "element",
        *,
        stop_fraction: float | None = None,
    ) -> None:
        super().__init__(masks, delta_t, stop_step, alpha, granularity, stop_fraction=stop_fraction)
        self.buffers: dict[str, torch.Tensor] = {}
        self._groups: dict[int, dict[str, Any]] = {}

    def on_train_start(self, ctx: TrainContext) -> None:
        super().on_train_start(ctx)
        params = dict(ctx.model.named_parameters())
        self.buffers = {
            n: self.buffers[n].to(params[n].device, params[n].dtype)
            if n in self.buffers
            else torch.zeros_like(params[n], memory_format=torch.contiguous_format)
            for n in self.masks
        }
        self._groups = {}
        for group in ctx.optimizer.param_groups:
            for p in group["params"]:
                self._groups[id(p)] = group

    def on_after_backward(self, ctx: TrainContext) -> None:
        if ctx.step + 1 > self.last_update:  # no update needs the buffers any more
            return
        params = dict(ctx.model.named_parameters())
        with torch.no_grad():
            for n, buf in self.buffers.items():
                p = params[n]
                group = self._groups[id(p)]
                buf.mul_(float(group.get("momentum", 0.0)))
                if p.grad is not None:
                    buf.add_(p.grad, alpha=1.0 - float(group.get("dampening", 0.0)))
                wd = float(group.get("weight_decay", 0.0))
                if wd:
                    buf.add_(p.detach(), alpha=wd * (1.0 - float(group.get("dampening", 0.0))))

    def update(self, ctx: TrainContext, fraction: float) -> GrowthResult:
        momenta = {n: entry_magnitudes(b, self.granularity).cpu() for n, b in self.buffers.items()}
        return snfs_step(self.magnitudes(ctx.model), momenta, self.masks, fraction)

    def after_update(self, ctx: TrainContext) -> None:
        params = dict(ctx.model.named_parameters())
        with torch.no_grad():
            for n, buf in self.buffers.items():
                buf.mul_(expand(self.masks[n].to(buf.device), params[n]).to(buf.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffers": {n: b.detach().cpu().clone() for n, b in self.buffers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffers = {n: b.clone() for n, b in state["buffers"].items()}


def growth_sparsity(
    method: Literal["rigl", "snfs"],
    model: nn.Module,
    names: Sequence[str],
    sparsity: float,
    hparams: GrowthHparams,
    generator: torch.Generator,
    granularity: Granularity = "element",
) -> GrowthSparsity:
    """A RigL or SNFS callback over the named weights of ``model`` at global ``sparsity``: per-layer
    densities by ``hparams.densities`` (tensors that come out dense are left out: nothing to drop or
    grow), random initial masks drawn from ``generator``, and the hparams' schedule."""
    densities = layer_densities_for(
        model, list(names), 1.0 - sparsity, hparams.densities, hparams.dense_first, hparams.erk_power
    )
    sparse = {n: d for n, d in densities.items() if d < 1.0}
    masks = initial_masks(model, list(sparse), sparsities(sparse), generator, granularity)
    cls = {"rigl": RigL, "snfs": SNFS}[method]
    return cls(masks, hparams.delta_t, None, hparams.alpha, granularity, stop_fraction=hparams.stop)
