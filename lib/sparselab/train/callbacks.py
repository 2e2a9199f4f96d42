"""Hooks into the training loop: where pruning, rewiring and metric logging attach.

A callback sees a :class:`TrainContext` before and after every optimizer step and at every epoch end,
where it may add columns to the epoch's metrics row. Callbacks with state (a DSR threshold, a
random generator...) return it from ``state_dict`` so resumed runs continue exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..config import TrainHparams
from ..data import DatasetSplits
from ..sparsity.mask import BoundMask, Mask


@dataclasses.dataclass
class TrainContext:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    hparams: TrainHparams
    splits: DatasetSplits
    device: torch.device
    steps_per_epoch: int
    epoch: int = 0  # the epoch in progress (1-based) or last completed at epoch end
    step: int = 0  # optimizer steps done so far
    bound_mask: BoundMask | None = None
    # make_loader's keyword arguments for callbacks that read data (the job's device, workers, decoding)
    loader_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def mask(self) -> Mask | None:
        return self.bound_mask.mask if self.bound_mask is not None else None

    def set_mask(self, mask: Mask | None) -> None:
        """Replace the enforced mask (dynamic sparse training changes it during training)."""
        self.bound_mask = mask.bind(self.model) if mask is not None else None
        if self.bound_mask is not None:
            self.bound_mask.enforce()


class Callback:
    """Base class; override what you need. ``name`` keys the callback's state in resume files."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def on_train_start(self, ctx: TrainContext) -> None:
        pass

    def on_after_backward(self, ctx: TrainContext) -> None:
        """Right after backward (and DDP's gradient averaging), before the engine zeroes the gradients
        of masked entries: ``p.grad`` is the dense gradient here (RigL's and SNFS's growth scores).
        Read only; changes belong in :meth:`on_before_step`."""

    def on_before_step(self, ctx: TrainContext) -> None:
        """After backward, before the optimizer step: gradients may be changed here (DeepR's noise)."""

    def on_step_end(self, ctx: TrainContext) -> None:
        pass

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        pass

    def on_train_end(self, ctx: TrainContext) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def check_unique_names(callbacks: Sequence[Callback]) -> None:
    names = [c.name for c in callbacks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"callbacks need unique names for their resume state: {dupes}")
