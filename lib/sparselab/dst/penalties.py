"""Penalties added to the gradients of sparse tensors while training."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..train.callbacks import Callback, TrainContext

__all__ = ["L1Penalty"]


class L1Penalty(Callback):
    """Adds ``c * sign(w)`` to the gradients of the sparse tensors: the gradient of an L1 term
    ``c * sum|w|`` (the DSR runs on MNIST use it instead of weight decay)."""

    def __init__(self, names: Sequence[str], coefficient: float) -> None:
        self.names, self.coefficient = list(names), float(coefficient)

    def on_before_step(self, ctx: TrainContext) -> None:
        params = dict(ctx.model.named_parameters())
        with torch.no_grad():
            for n in self.names:
                p = params[n]
                if p.grad is not None:
                    p.grad.add_(torch.sign(p.detach()), alpha=self.coefficient)
