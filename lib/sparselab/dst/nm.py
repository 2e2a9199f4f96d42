"""N:M sparse training from dense weights with SR-STE (Zhou et al., ICLR 2021, "Learning N:M
fine-grained structured sparse neural networks from scratch").

The callback keeps a dense copy ``W`` of every listed weight; the model's forward pass sees the
N:M-masked weights ``W * E``. After backward, the gradient ``g`` at the masked weights (the
straight-through estimator: it reaches every entry, pruned ones too) gets the sparse-refined term::

    g + lambda_w * (1 - E) * W

and the optimizer updates the dense ``W`` (momentum and weight decay included). After the step the
mask ``E`` is re-selected from ``|W|`` every ``period`` steps (``period=1``: the paper's every
iteration; ``period=None``: the mask chosen at the start stays fixed while pruned weights keep
learning and decaying), and the model again holds ``W * E``. Between steps, at evaluations and in
saved checkpoints the model is exactly N:M; at the end the last mask becomes the engine's
:class:`~sparselab.sparsity.mask.Mask`, so the result carries it and everything downstream
(finetuning, checkpoints, mask operations) enforces it as any mask.

**Gradual** (``ramp > 0``, the decaying pruning mask of Kao et al., "Training recipes for N:M
structured sparsity with decaying pruning mask", 2022): for the first ``ramp`` of the run's optimizer
steps the forward pass sees ``W * (E + beta·(1 - E))`` with ``beta = 1 - t / T_ramp`` falling
linearly from 1 (dense) to 0 (exactly N:M), so the network moves to N:M gradually instead of
losing half its weights at step 0; the regulariser and the mask re-selection work as above. During
the ramp, epoch-end evaluations and checkpoints see the partly faded weights; from ``T_ramp`` on the
model is exactly N:M.

The engine itself must not enforce a mask on these weights while SR-STE trains (it would zero
their straight-through gradients); the callback refuses to start under one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..sparsity.mask import Mask
from ..sparsity.nm import nm_mask_tensor
from ..train.callbacks import Callback, TrainContext

__all__ = ["SRSTE"]


class SRSTE(Callback):
    """SR-STE N:M training of ``names`` (``decay`` is the paper's lambda_W, 2e-4 for its ResNets;
    ``decay=0`` is the plain straight-through estimator; ``ramp`` the fraction of the run over
    which pruned weights fade out, 0: pruned from the first step)."""

    def __init__(
        self,
        names: Sequence[str],
        n: int = 2,
        m: int = 4,
        decay: float = 2e-4,
        period: int | None = 1,
        ramp: float = 0.0,
    ) -> None:
        if not 0.0 <= ramp <= 1.0:
            raise ValueError(f"SR-STE ramp {ramp} must be a fraction of the run's steps in [0, 1]")
        if period is not None and (not isinstance(period, int) or period < 1):
            raise ValueError(f"SR-STE period {period!r} must be a positive number of steps, or None (fixed mask)")
        if decay < 0:
            raise ValueError(f"SR-STE decay {decay} must be >= 0")
        self.names, self.n, self.m = list(names), int(n), int(m)
        self.decay, self.period, self.ramp = float(decay), period, float(ramp)
        self.ramp_steps = 0  # resolved against the run's length at train start
        self._beta = 0.0  # the weight pruned entries keep in the forward pass
        self.dense: dict[str, torch.Tensor] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.updates = 0  # mask re-selections done (after the initial one)

    def _params(self, ctx: TrainContext) -> dict[str, torch.Tensor]:
        params = dict(ctx.model.named_parameters())
        return {n: params[n] for n in self.names}

    def _select(self) -> None:
        self.masks = {k: nm_mask_tensor(w, self.n, self.m, name=k) for k, w in self.dense.items()}

    def beta(self, step: int) -> float:
        """The weight of pruned entries after ``step`` optimizer steps (1 - step / T_ramp, at least 0)."""
        return max(0.0, 1.0 - step / self.ramp_steps) if self.ramp_steps else 0.0

    @torch.no_grad()
    def _show_masked(self, ctx: TrainContext) -> None:
        beta = self.beta(ctx.step)
        for k, p in self._params(ctx).items():
            keep = self.masks[k].to(p.dtype)
            p.copy_(self.dense[k] * (keep if beta == 0.0 else keep + beta * (1.0 - keep)))

    def on_train_start(self, ctx: TrainContext) -> None:
        enforced = [k for k in self.names if ctx.mask is not None and k in ctx.mask]
        if enforced:
            raise ValueError(
                f"SR-STE trains {enforced} from dense weights, but the engine enforces a mask on them "
                "(it would zero their straight-through gradients): start it without a mask on these weights"
            )
        if (self.period is not None or self.ramp) and ctx.hparams.select == "best_val":
            raise ValueError(
                "SR-STE with a changing mask (period set) needs select: last; the best epoch's weights "
                "may belong to an earlier mask than the one the run ends with"
            )
        self.ramp_steps = round(self.ramp * ctx.hparams.epochs * ctx.steps_per_epoch) if self.ramp else 0
        if not self.dense:  # a fresh run (a resumed one restored its dense weights and masks)
            self.dense = {k: p.detach().clone() for k, p in self._params(ctx).items()}
            self._select()
        self._show_masked(ctx)

    @torch.no_grad()
    def on_before_step(self, ctx: TrainContext) -> None:
        for k, p in self._params(ctx).items():
            w = self.dense[k]
            if p.grad is not None and self.decay:
                p.grad.add_(w * (~self.masks[k]).to(w.dtype), alpha=self.decay)
            p.copy_(w)  # the optimizer updates the dense weights

    @torch.no_grad()
    def on_step_end(self, ctx: TrainContext) -> None:
        for k, p in self._params(ctx).items():
            self.dense[k].copy_(p)
        if self.period is not None and ctx.step % self.period == 0:
            self._select()
            self.updates += 1
        self._show_masked(ctx)

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        row["srste_mask_updates"] = self.updates
        row["srste_beta"] = self.beta(ctx.step)

    def on_train_end(self, ctx: TrainContext) -> None:
        """The last mask becomes the engine's: the result carries it and later training enforces it."""
        ctx.set_mask(self.mask())

    def mask(self) -> Mask:
        return Mask(self.masks)

    def state_dict(self) -> dict[str, Any]:
        return {
            "dense": {k: v.clone() for k, v in self.dense.items()},
            "masks": {k: v.clone() for k, v in self.masks.items()},
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dense = {k: v.clone() for k, v in state["dense"].items()}
        self.masks = {k: v.to(torch.bool).clone() for k, v in state["masks"].items()}
        self.updates = int(state["updates"])
