"""Gradual magnitude pruning (Zhu & Gupta) of a dense checkpoint, as training: the spec, the
callback that prunes at the scheduled epochs (:mod:`.gradual` has the schedules) and the training
run. The DST study's ``gradual`` baseline (the DSR code's clock and schedules) and the transfer
study's GMP upstreams (the AC/DC repo's polynomial ramp, ``GradualSpec.ramp``) both run it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..config import ComputeHparams, DataHparams, GmpRamp, TrainHparams
from ..config.hparams import spec_record
from ..sparsity.magnitude import magnitude_mask
from ..sparsity.mask import Mask
from ..train.callbacks import Callback, TrainContext
from ..train.engine import TrainResult
from ..train.run import RunFiles, train_and_save
from ..train.setup import RunSetup
from . import gradual
from .layers import layer_sparsities, sparse_tensors

__all__ = ["GradualSpec", "GradualPruning", "train_gradual"]


@dataclasses.dataclass(frozen=True)
class GradualSpec:
    """Gradual magnitude pruning (Zhu & Gupta) of a dense checkpoint, per layer."""

    target: float = 0.9  # final sparsity of the conv tensors (and Linear unless target_fc)
    target_fc: float | None = None
    sparse_layers: str | tuple[str, ...] = "paper"
    start: int = 0  # first prune event after this epoch (0-based)
    freq: int = 2
    iterations: int = 20
    schedule: Literal["cubic", "exponential"] = "cubic"
    # fraction: each layer loses its scheduled fraction (the paper); threshold: one magnitude
    # threshold for all sparse tensors, set so that their total reaches the scheduled sparsity
    by: Literal["fraction", "threshold"] = "fraction"
    output_layer: str | None = None  # MNIST rule: capped at 0.9 when the target is above
    output_cap: float = 0.9
    # the AC/DC repo's polynomial ramp instead of start/freq/iterations/schedule (the transfer
    # study's GMP): steps at its epochs, each to its level (globally with by="threshold", else per layer)
    ramp: GmpRamp | None = None


class GradualPruning(Callback):
    """Prune events after the scheduled epochs: per layer, the smallest active entries (or, with a
    ramp, the AC/DC repo's steps before the ramp's epochs)."""

    def __init__(self, spec: GradualSpec, targets: Mapping[str, float]) -> None:
        self.spec, self.targets, self.events = spec, dict(targets), 0
        r = spec.ramp
        self.ramp_steps = (
            set() if r is None else set(gradual.ramp_steps(r.start, r.freq, r.end, final_step=r.final_step))
        )
        if r is not None and any(r.initial_sparsity > t for t in self.targets.values()):
            raise ValueError(
                f"ramp initial_sparsity {r.initial_sparsity} is above a target {min(self.targets.values())}"
            )

    def on_train_start(self, ctx: TrainContext) -> None:
        if ctx.mask is not None and ctx.epoch == 0 and 0 in self.ramp_steps:  # a step before any training
            self._ramp_step(ctx, 0)

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        if self.spec.ramp is not None:
            if ctx.mask is not None and ctx.epoch in self.ramp_steps:  # before 0-based epoch ctx.epoch
                self._ramp_step(ctx, ctx.epoch)
        else:
            self._event(ctx)
        if ctx.mask is not None:
            row["sparsity"] = ctx.mask.sparsity

    def _ramp_step(self, ctx: TrainContext, epoch: int) -> None:
        """One step of the AC/DC repo's ramp: every tensor to its level at ``epoch`` (level 0: no step,
        as the original skips it)."""
        r = self.spec.ramp
        assert r is not None and ctx.mask is not None
        levels = {
            n: gradual.ramp_sparsity(
                epoch, t, start=r.start, end=r.end, initial_sparsity=r.initial_sparsity, degree=r.degree
            )
            for n, t in self.targets.items()
        }
        if not any(levels.values()):
            return
        self.events += 1
        if self.spec.by == "threshold":
            sizes = {n: ctx.mask[n].numel() for n in levels}
            level = sum(levels[n] * sizes[n] for n in levels) / sum(sizes.values())
            new = magnitude_mask(ctx.model, level, "global", list(levels), current=ctx.mask)
        else:
            new = magnitude_mask(ctx.model, levels, "layerwise", list(levels), current=ctx.mask)
        ctx.set_mask(new.to_device(ctx.device))

    def _event(self, ctx: TrainContext) -> None:
        """One event of the DSR code's clock after 0-based epoch ``ctx.epoch - 1``, if it is one."""
        s = self.spec
        epoch = ctx.epoch - 1  # 0-based, as the original's clock
        if ctx.mask is not None and gradual.is_event_epoch(epoch, s.start, s.freq, s.iterations):
            self.events += 1
            if s.by == "threshold":
                total = sum(ctx.mask[n].numel() for n in self.targets)
                target = sum(self.targets[n] * ctx.mask[n].numel() for n in self.targets) / total
                after = gradual.sparsity_after(self.events, s.iterations, target, s.schedule)
                new = magnitude_mask(ctx.model, after, "global", list(self.targets), current=ctx.mask)
            else:
                fractions = gradual.event_fractions(self.events, s.iterations, self.targets, s.schedule)
                params = dict(ctx.model.named_parameters())
                weights = {n: params[n].detach() for n in self.targets}
                new = gradual.prune_event(weights, ctx.mask, fractions)
            ctx.set_mask(new.to_device(ctx.device))

    def state_dict(self) -> dict[str, Any]:
        return {"events": self.events}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.events = int(state["events"])


def train_gradual(
    files: RunFiles,
    *,
    dense: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    spec: GradualSpec,
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """Gradual pruning of a dense checkpoint (``recipe.epochs`` should be
    :func:`sparselab.dst.gradual.total_epochs` of the schedule)."""
    run = RunSetup.from_checkpoint(dense, data, seed)
    ckpt = run.checkpoint
    net = ckpt.model
    names = sparse_tensors(
        net, ckpt.spec.arch, spec.sparse_layers if isinstance(spec.sparse_layers, str) else list(spec.sparse_layers)
    )
    sizes = {n: dict(net.named_parameters())[n].numel() for n in names}
    targets = layer_sparsities(net, names, spec.target, spec.target_fc)
    if spec.output_layer is not None:
        fc_names = [n for n in names if dict(net.named_parameters())[n].dim() == 2]
        targets.update(
            gradual.per_layer_targets(
                {n: sizes[n] for n in fc_names}, spec.target_fc or spec.target, spec.output_layer, spec.output_cap
            )
        )
    mask = Mask.ones(net, names)
    hparams = run.hparams("dst_gradual", recipe, gradual=spec_record(spec), parent={"path": str(dense)})
    return train_and_save(
        files,
        run,
        net,
        mask,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=True,
        callbacks=(GradualPruning(spec, targets),),
        parents=(ckpt.as_parent("dense", dense),),
    )
