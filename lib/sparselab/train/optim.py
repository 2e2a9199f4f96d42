"""SGD and per-iteration learning-rate schedules built from the hparams dataclasses."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..config import OptimizerHparams, ScheduleHparams


def build_optimizer(model: nn.Module, hp: OptimizerHparams) -> torch.optim.SGD:
    """SGD; with ``decay_norm_and_bias`` off, 1-D tensors (biases, norm scales) get no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if hp.decay_norm_and_bias or hp.weight_decay == 0:
        groups = [{"params": params, "weight_decay": hp.weight_decay}]
    else:
        groups = [
            {"params": [p for p in params if p.dim() > 1], "weight_decay": hp.weight_decay},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ]
    return torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov)


def lr_factor_fn(hp: ScheduleHparams, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """Multiplier of the base lr at iteration ``step`` (0-based): warm-up, then the decay rule.

    Milestones and warm-up are given in epochs (fractions allowed) and converted to iterations,
    so the schedule is stepped every iteration, as large-batch recipes require.
    """
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(hp.warmup_epochs * steps_per_epoch))
    milestones = [int(round(m * steps_per_epoch)) for m in hp.milestones]

    def decay(step: int) -> float:
        if hp.kind == "multistep":
            return hp.gamma ** sum(step >= m for m in milestones)
        if hp.kind == "cosine":
            span = max(1, total - warmup)
            progress = min(1.0, max(0, step - warmup) / span)
            return hp.final_lr_factor + (1 - hp.final_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    def factor(step: int) -> float:
        if step < warmup:
            return hp.warmup_start + (1.0 - hp.warmup_start) * step / warmup
        return decay(step)

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, hp: ScheduleHparams, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(hp, steps_per_epoch, epochs))
