"""SGD and learning-rate schedules (stepped per iteration or per epoch) built from the hparams dataclasses."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..config import OptimizerHparams, ScheduleHparams

_SGD_HAS_FUSED = "fused" in inspect.signature(torch.optim.SGD).parameters  # torch >= 2.3


def sgd_kernel(params: Sequence[torch.Tensor]) -> dict[str, bool]:
    """How SGD runs its update; every choice computes the same update (to float rounding).

    On CUDA a launch-bound small net pays for every kernel: ``fused`` (one kernel for all
    parameters) where the installed torch has it and every parameter is a floating CUDA tensor,
    else ``foreach`` (a few multi-tensor kernels). Elsewhere torch's default per-parameter loop,
    which keeps today's bitwise CPU results and resume files.
    """
    if not params or not all(p.is_cuda for p in params):
        return {}
    if _SGD_HAS_FUSED and all(p.is_floating_point() for p in params):
        return {"fused": True}
    return {"foreach": True}


def build_optimizer(model: nn.Module, hp: OptimizerHparams) -> torch.optim.SGD:
    """SGD (kernel: :func:`sgd_kernel`); with ``decay_norm_and_bias`` off, 1-D tensors (biases,
    norm scales) get no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if hp.decay_norm_and_bias or hp.weight_decay == 0:
        groups = [{"params": params, "weight_decay": hp.weight_decay}]
    else:
        groups = [
            {"params": [p for p in params if p.dim() > 1], "weight_decay": hp.weight_decay},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ]
    return torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, **sgd_kernel(params))


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict`` that keeps this machine's kernel choice: saved param groups
    carry ``fused``/``foreach``, and a resume file written on a GPU must not switch a CPU run to
    another kernel (nor one written on CPU keep a GPU run on the per-parameter loop)."""
    kernels: list[dict[str, Any]] = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kernel in zip(optimizer.param_groups, kernels):
        group.update(kernel)


def lr_factor_fn(hp: ScheduleHparams, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """Multiplier of the base lr at iteration ``step`` (0-based): warm-up, then the decay rule.

    Per iteration (the default), milestones and warm-up are given in epochs (fractions allowed)
    and converted to iterations, as large-batch recipes require. With ``step_every: epoch`` every
    iteration of an epoch gets that epoch's factor (:func:`epoch_factor_fn`).
    """
    if hp.step_every == "epoch":
        per_epoch = epoch_factor_fn(hp, epochs)
        return lambda step: per_epoch(step // max(1, steps_per_epoch))
    warmup = int(round(hp.warmup_epochs * steps_per_epoch))
    milestones = [int(round(m * steps_per_epoch)) for m in hp.milestones]
    return _factor_fn(hp, warmup, max(1, steps_per_epoch * epochs), milestones, warmup_offset=0)


def epoch_factor_fn(hp: ScheduleHparams, epochs: int) -> Callable[[int], float]:
    """Multiplier of the base lr in (0-based) epoch ``e`` of a schedule stepped once per epoch.

    As the original's epoch-stepped schedulers (AC/DC's ``CosineLR``, from STR's ``cosine_lr``):
    warm-up epoch ``e < W`` runs at ``start + (1 - start) (e + 1) / W``, the ramp's value at the
    epoch's end, so the last warm-up epoch is at the full rate; from epoch ``W`` on, the decay's
    value at the epoch's start: cosine ``0.5 (1 + cos(pi (e - W) / (E - W)))``, multistep
    ``gamma`` per milestone ``<= e``.
    """
    milestones = [int(m) for m in hp.milestones]
    return _factor_fn(hp, int(hp.warmup_epochs), max(1, epochs), milestones, warmup_offset=1)


def _factor_fn(
    hp: ScheduleHparams, warmup: int, total: int, milestones: list[int], *, warmup_offset: int
) -> Callable[[int], float]:
    """Warm-up then decay over ``total`` units (iterations or epochs) of which ``warmup`` warm up."""

    def decay(t: int) -> float:
        if hp.kind == "multistep":
            return hp.gamma ** sum(t >= m for m in milestones)
        if hp.kind == "cosine":
            span = max(1, total - warmup)
            progress = min(1.0, max(0, t - warmup) / span)
            return hp.final_lr_factor + (1 - hp.final_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    def factor(t: int) -> float:
        if t < warmup:
            return hp.warmup_start + (1.0 - hp.warmup_start) * (t + warmup_offset) / warmup
        return decay(t)

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, hp: ScheduleHparams, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(hp, steps_per_epoch, epochs))
