"""The one training loop every study uses.

SGD with a schedule stepped per iteration (or per epoch), label smoothing and logit temperature;
masks enforced after every optimizer step; callbacks at step and epoch end; per-epoch metrics (train running
averages, val/test evaluation) to CSV; bf16 autocast and channels_last on CUDA; resumable from
the last completed epoch: after a kill, the same call continues and, in deterministic mode on
CPU, ends with bitwise the same weights as an uninterrupted run.

Under torchrun (see :mod:`.distributed`) the same call trains data-parallel: each process takes a
slice of every global batch, the model is wrapped in DDP with BatchNorm over the global batch,
evaluation is sharded and reduced, and only rank 0 writes metrics and resume state.

A non-finite loss or weight ends the run with :class:`~.divergence.DivergenceError` at the end of
the epoch it happened in, before that epoch's metrics, resume state or snapshot are written (the
check reads losses the loop keeps anyway: no host sync per step; see :mod:`.divergence`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..compute import autocast, begin_captured_step, capture_forward, captures, place
from ..config import ComputeHparams, SeedHparams, TrainHparams
from ..data import DatasetSplits, make_loader
from ..data.loaders import mix_seed
from ..data.splits import dataset_len
from ..io.atomic import atomic_write_with
from ..metrics.classification import predictions, summarize, target_ranks, topk_counts
from ..sparsity.mask import Mask
from . import distributed, progress
from .callbacks import Callback, TrainContext, check_unique_names
from .divergence import DivergenceError, epoch_status, raise_if_diverged
from .optim import build_optimizer, build_scheduler, load_optimizer_state
from .prefetch import DevicePrefetcher
from .state import RESUME_FILE, TrainState, capture_rng, restore_rng

log = logging.getLogger("sparselab")

DIVERGENCE_FIX = "Lower the recipe's optimizer.lr or add schedule.warmup_epochs."

METRIC_COLUMNS = [
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_top1",
    "train_top5",
    "train_eval_loss",
    "train_eval_top1",
    "train_eval_top5",
    "val_loss",
    "val_top1",
    "val_top5",
    "test_loss",
    "test_top1",
    "test_top5",
    "epoch_time_s",
    "eval_time_s",
]


@dataclasses.dataclass
class TrainResult:
    model: nn.Module
    mask: Mask | None
    history: list[dict[str, Any]]
    resumed_from_epoch: int | None
    selected_epoch: int | None = None  # select=best_val: the epoch whose weights the model holds
    momentum: dict[str, torch.Tensor] | None = None  # SGD momentum buffers at the end, by parameter name

    @property
    def final(self) -> dict[str, Any]:
        """The metrics of the weights the run ends with (the selected epoch's, or the last)."""
        if self.selected_epoch is not None:
            return next(r for r in self.history if r.get("epoch") == self.selected_epoch)
        return self.history[-1] if self.history else {}


def write_metrics_csv(path: str | Path, history: Sequence[dict[str, Any]]) -> None:
    """Per-epoch metrics, known columns first, callback columns after; empty cells when absent (atomic).

    Written with the ``csv`` module rather than pandas, which would add half a second to every job.
    """
    extra = sorted({k for row in history for k in row} - set(METRIC_COLUMNS))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS + extra, restval="")
            writer.writeheader()
            writer.writerows(history)

    atomic_write_with(path, write)


def _full_precision(logits: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 logits (autocast) in float32 for the loss; float32 or float64 ones as they are."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def _eval_splits(splits: DatasetSplits, hp: TrainHparams) -> dict[str, Any]:
    named = {"val": splits.val, "test": splits.test}
    if hp.eval_train:
        named["train_eval"] = splits.train_eval
    return {k: v for k, v in named.items() if v is not None}


class _Trainer:
    """Holds the moving parts of one ``train`` call; see :func:`train`."""

    def __init__(
        self,
        model: nn.Module,
        splits: DatasetSplits,
        hp: TrainHparams,
        seeds: SeedHparams,
        compute: ComputeHparams,
        mask: Mask | None,
        callbacks: Sequence[Callback],
        fingerprint: str,
        momentum: Mapping[str, torch.Tensor] | None = None,
        run_name: str = "",
    ) -> None:
        check_unique_names(callbacks)
        if hp.select == "best_val" and splits.val is None:
            raise ValueError(
                "recipe select: best_val needs a validation split: set the dataset's val_fraction > 0 "
                "(the test set is never used to select weights)"
            )
        self.hp, self.seeds, self.callbacks, self.fingerprint = hp, seeds, list(callbacks), fingerprint
        self.run_name = run_name
        self.owns_metrics = False  # whether the metrics CSV describes this run (removed if it diverges)
        self.best: dict[str, Any] | None = None
        self.selected_epoch: int | None = None
        # the compiler's determinism flag too where the step may be captured (compiled)
        self.placement = place(
            compute, compiled=compute.compile or compute.capture != "none", local=distributed.rank_device
        )
        self.device, self.amp, self.channels_last = (
            self.placement.device,
            self.placement.amp,
            self.placement.channels_last,
        )
        self.world = distributed.init_process_group(self.device)
        self.capture = captures(self.device, compute, self.world.distributed)
        self.model = self.placement.model(model)
        self.cleanup = contextlib.ExitStack()  # undone when training ends (BatchNorm swapped back)
        self.forward: nn.Module = self.model
        if self.world.distributed:
            if compute.sync_batchnorm:
                self.cleanup.enter_context(distributed.global_batchnorm(self.model, self.device))
            self.forward = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                **distributed.buffer_sync(not compute.sync_batchnorm),  # per-process BN statistics: rank 0's
            )
        # no collectives; torch.compile of a module returns an OptimizedModule (an nn.Module): its stub says Callable
        self.eval_forward = cast(nn.Module, torch.compile(self.model)) if compute.compile else self.model
        if not self.world.distributed:
            self.forward = self.eval_forward
        elif compute.compile:
            self.forward = cast(nn.Module, torch.compile(self.forward))
        # full training batches through CUDA graphs; eval and an odd-sized last batch use self.forward
        self.captured = capture_forward(self.model) if self.capture else None
        self.bar = progress.interactive(compute.progress) and self.world.main
        shard: dict[str, Any] = {"rank": self.world.rank, "world_size": self.world.size}
        self.train_loader = make_loader(
            splits.train,
            hp.batch_size,
            shuffle=True,
            order_seed=seeds.data_order,
            aug_seed=seeds.augmentation,
            drop_last=hp.drop_last,
            **self.placement.loader_options(),
            **shard,
        )
        self.eval_loaders = {
            name: make_loader(ds, hp.eval_batch_size, shuffle=False, **self.placement.loader_options(), **shard)
            for name, ds in _eval_splits(splits, hp).items()
        }
        steps = len(self.train_loader)
        if steps == 0:
            raise ValueError(
                f"no full batch of {hp.batch_size} in {dataset_len(splits.train)} training samples (drop_last)"
            )
        self.train_size = dataset_len(splits.train)
        last = hp.batch_size if hp.drop_last else self.train_size - hp.batch_size * (steps - 1)
        if self.world.distributed and min(hp.batch_size, last) < self.world.size:
            raise ValueError(
                f"the last training batch has {last} samples for {self.world.size} processes: "
                "set the recipe's drop_last: true or use fewer processes"
            )
        self.optimizer = build_optimizer(self.model, hp.optimizer)
        if momentum:
            self.set_momentum(momentum)
        self.scheduler = build_scheduler(self.optimizer, hp.schedule, steps, hp.epochs)
        self.ctx = TrainContext(
            self.model,
            self.optimizer,
            self.scheduler,
            hp,
            splits,
            self.device,
            steps,
            loader_options=self.placement.loader_options(),
        )
        self.ctx.set_mask(mask.to_device(self.device) if mask is not None else None)
        self.history: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- state
    def set_momentum(self, momentum: Mapping[str, torch.Tensor]) -> None:
        """Start SGD from given momentum buffers (by parameter name) instead of zeros."""
        params = dict(self.model.named_parameters())
        unknown = sorted(set(momentum) - set(params))
        if unknown:
            raise KeyError(f"momentum buffers for unknown parameters {unknown[:5]}")
        for name, buf in momentum.items():
            p = params[name]
            if buf.shape != p.shape:
                raise ValueError(
                    f"momentum buffer of {name} has shape {tuple(buf.shape)}, the parameter {tuple(p.shape)}"
                )
            self.optimizer.state[p]["momentum_buffer"] = buf.detach().to(p.device, p.dtype).clone()

    def momentum(self) -> dict[str, torch.Tensor]:
        state = self.optimizer.state
        return {
            n: state[p]["momentum_buffer"].detach()
            for n, p in self.model.named_parameters()
            if state.get(p, {}).get("momentum_buffer") is not None
        }

    def state(self) -> TrainState:
        mask = self.ctx.mask
        return TrainState(
            fingerprint=self.fingerprint,
            epoch=self.ctx.epoch,
            step=self.ctx.step,
            model={k: v.detach().clone() for k, v in self.model.state_dict().items()},
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            rng=capture_rng(),
            history=[dict(r) for r in self.history],
            mask=dict(mask.to_tensors()) if mask is not None else None,
            callbacks={c.name: c.state_dict() for c in self.callbacks},
            best=self.best,
        )

    def load_state(self, state: TrainState, *, with_history: bool) -> None:
        self.model.load_state_dict(state.model)
        load_optimizer_state(self.optimizer, state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        restore_rng(state.rng)
        self.ctx.epoch, self.ctx.step = state.epoch, state.step
        if state.mask is not None:
            self.ctx.set_mask(Mask(state.mask).to_device(self.device))
        if with_history:
            self.history = [dict(r) for r in state.history]
            self.best = state.best
            for c in self.callbacks:
                if c.name in state.callbacks:
                    c.load_state_dict(state.callbacks[c.name])

    # ----------------------------------------------------------------- loop
    def evaluate_all(self, row: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        for name, loader in self.eval_loaders.items():
            loss_sum, ranks, targets = predictions(
                self.eval_forward,
                DevicePrefetcher(loader, self.device, self.channels_last),
                self.device,
                temperature=self.hp.temperature,
                amp=self.amp,
                channels_last=self.channels_last,
            )
            if self.world.distributed:  # every process evaluated a slice of each batch
                loss_sum = distributed.all_reduce_sum(loss_sum)
                ranks, targets = distributed.all_gather_cat(ranks), distributed.all_gather_cat(targets)
            m = summarize(loss_sum, ranks, targets)
            row.update(
                {
                    f"{name}_loss": m["loss"],
                    f"{name}_top1": m["top1"],
                    f"{name}_top5": m["top5"],
                    f"{name}_mean_per_class": m["mean_per_class"],
                }
            )
        row["eval_time_s"] = time.perf_counter() - t0

    def global_batch(self, index: int) -> int:
        """Samples in the ``index``-th global batch of an epoch (all full but maybe the last)."""
        if self.hp.drop_last or index < len(self.train_loader) - 1:
            return self.hp.batch_size
        return self.train_size - self.hp.batch_size * index

    def step_forward(self, size: int) -> nn.Module:
        """The captured model for a full batch (``compute.capture``), else the plain forward."""
        if self.captured is not None and size == self.hp.batch_size:
            begin_captured_step(self.device)
            return self.captured
        return self.forward

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        hp, ctx = self.hp, self.ctx
        self.model.train()
        self.train_loader.set_epoch(epoch)
        # Per step only cheap, sync-free ops are recorded; reductions happen once at epoch end.
        losses: list[torch.Tensor] = []
        ranks: list[torch.Tensor] = []
        sizes: list[int] = []
        lr = float("nan")
        t0 = time.perf_counter()
        desc = f"epoch {epoch}/{hp.epochs}"
        batches = DevicePrefetcher(self.train_loader, self.device, self.channels_last)
        for index, (x, y) in enumerate(progress.batches(batches, len(self.train_loader), desc, self.bar)):
            self.optimizer.zero_grad(set_to_none=True)  # before a captured forward reuses the last step's memory
            with autocast(self.device, self.amp):
                logits = self.step_forward(len(y))(x)
            logits = _full_precision(logits)
            if hp.temperature != 1.0:
                logits = logits / hp.temperature
            if self.world.distributed:
                # DDP averages gradients over processes; weighing this slice's summed loss by
                # processes / global batch makes that average the gradient of the global mean.
                summed = F.cross_entropy(logits, y, label_smoothing=hp.label_smoothing, reduction="sum")
                loss = summed * (self.world.size / self.global_batch(index))
            else:
                loss = F.cross_entropy(logits, y, label_smoothing=hp.label_smoothing)
            loss.backward()
            for c in self.callbacks:
                c.on_after_backward(ctx)  # dense gradients, before the mask zeroes them
            if ctx.bound_mask is not None:
                ctx.bound_mask.mask_gradients()
            for c in self.callbacks:
                c.on_before_step(ctx)
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            if ctx.bound_mask is not None:
                ctx.bound_mask.enforce()
            ctx.step += 1
            with torch.no_grad():
                losses.append(summed.detach() / len(y) if self.world.distributed else loss.detach())
                ranks.append(target_ranks(logits.detach(), y))
            sizes.append(len(y))
            for c in self.callbacks:
                c.on_step_end(ctx)
        stacked = torch.stack(losses)
        self.check_finite(epoch, stacked)
        loss_sum = (stacked.double() * torch.tensor(sizes, dtype=torch.float64, device=self.device)).sum()
        c1, c5 = topk_counts(torch.cat(ranks))
        seen = sum(sizes)
        if self.world.distributed:
            totals = torch.tensor([loss_sum.item(), c1, c5, seen], dtype=torch.float64, device=self.device)
            loss_sum, c1, c5, seen = distributed.all_reduce_sum(totals).tolist()
        return {
            "epoch": epoch,
            "step": ctx.step,
            "lr": lr,  # used by the epoch's last step
            "train_loss": float(loss_sum) / seen,
            "train_top1": c1 / seen,
            "train_top5": c5 / seen,
            "epoch_time_s": time.perf_counter() - t0,
        }

    def check_finite(self, epoch: int, losses: torch.Tensor) -> None:
        """Raise :class:`DivergenceError` if a step's loss or a weight at the end of ``epoch`` is
        NaN or infinite: one device computation, one reduction over processes, one read-back."""
        status = epoch_status(losses, self.model.state_dict().values())
        if self.world.distributed:
            status = distributed.all_reduce_min(status)
        first_step = self.ctx.step - len(losses) + 1
        raise_if_diverged(
            status.tolist(),
            run=self.run_name,
            epoch=epoch,
            first_step=first_step,
            steps=len(losses),
            named_tensors=self.model.state_dict().items(),
            fix=DIVERGENCE_FIX,
        )

    def run(
        self,
        *,
        state_dir: Path | None,
        metrics_csv: Path | None,
        eval_before: bool,
        initial_state: TrainState | None,
        snapshots: Mapping[int, Path],
    ) -> int | None:
        hp, ctx = self.hp, self.ctx
        resume_path = state_dir / RESUME_FILE if state_dir is not None else None
        resumed_from = None
        if initial_state is not None:
            self.load_state(initial_state, with_history=False)
            if ctx.bound_mask is not None:  # rewound dense weights under a new mask (IMP)
                ctx.bound_mask.enforce()
        else:
            # dropout and other in-model noise; each process draws its own for its slice of the batch
            rank = (self.world.rank,) if self.world.distributed else ()
            torch.manual_seed(mix_seed(self.seeds.init, 0x5EED, *rank))
        if resume_path is not None and resume_path.exists():
            saved = TrainState.load(resume_path, map_location=self.device)
            if saved.fingerprint == self.fingerprint:
                self.load_state(saved, with_history=True)
                resumed_from = saved.epoch
                self.owns_metrics = True  # the metrics CSV holds this run's earlier epochs
                log.info("resuming from %s after epoch %d", resume_path, saved.epoch)
            else:
                log.warning("ignoring %s: it belongs to another configuration", resume_path)
        for c in self.callbacks:
            c.on_train_start(ctx)
        if eval_before and not self.history:
            row = {"epoch": ctx.epoch, "step": ctx.step, "lr": self.scheduler.get_last_lr()[0]}
            self.evaluate_all(row)
            self.history.append(row)
        for epoch in range(ctx.epoch + 1, hp.epochs + 1):
            ctx.epoch = epoch
            row = self.train_epoch(epoch)
            if epoch % hp.eval_every == 0 or epoch == hp.epochs:
                self.evaluate_all(row)
                self.remember_if_best(row)
            for c in self.callbacks:
                c.on_epoch_end(ctx, row)
            self.history.append(row)
            log.info(progress.format_row(row, hp.epochs))
            if metrics_csv is not None and self.world.main:
                write_metrics_csv(metrics_csv, self.history)
                self.owns_metrics = True
            if (resume_path is not None or epoch in snapshots) and self.world.main:
                state = self.state()
                if resume_path is not None:
                    state.save(resume_path)
                if epoch in snapshots:
                    state.save(snapshots[epoch])
            if epoch in snapshots:
                distributed.barrier()  # other processes may read the snapshot next
        for c in self.callbacks:
            c.on_train_end(ctx)
        if hp.select == "best_val" and self.best is not None:
            self.model.load_state_dict(self.best["model"])
            self.selected_epoch = int(self.best["epoch"])
            log.info(
                "selected the weights of epoch %d (best val top-1 %.4f)", self.selected_epoch, self.best["val_top1"]
            )
        if metrics_csv is not None and self.world.main:
            write_metrics_csv(metrics_csv, self.history)
        distributed.barrier()  # every file is written before any process moves on
        return resumed_from

    def remember_if_best(self, row: dict[str, Any]) -> None:
        """select=best_val: keep a copy of the weights of the best validation top-1 so far (the
        earliest epoch wins ties)."""
        if self.hp.select != "best_val" or "val_top1" not in row:
            return
        if self.best is None or row["val_top1"] > self.best["val_top1"]:
            weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best = {"epoch": int(row["epoch"]), "val_top1": float(row["val_top1"]), "model": weights}


def train(
    model: nn.Module,
    splits: DatasetSplits,
    hp: TrainHparams,
    *,
    seeds: SeedHparams,
    compute: ComputeHparams | None = None,
    mask: Mask | None = None,
    callbacks: Sequence[Callback] = (),
    state_dir: str | Path | None = None,
    metrics_csv: str | Path | None = None,
    eval_before: bool = False,
    initial_state: TrainState | None = None,
    snapshots: Mapping[int, str | Path] | None = None,
    fingerprint: str = "",
    momentum: Mapping[str, torch.Tensor] | None = None,
    run_name: str = "",
) -> TrainResult:
    """Train ``model`` in place for ``hp.epochs`` epochs and return it with its metric history.

    ``state_dir`` enables resuming: the full state is saved there after every epoch and picked
    up by the next call with the same ``fingerprint`` (callers hash their whole run spec into it).
    ``initial_state`` starts from a saved state instead of epoch 0 (rewinding); ``snapshots``
    saves the state after given epochs (e.g. the rewind point). ``eval_before`` evaluates before
    the first epoch and records it as epoch 0 (e.g. accuracy right after pruning). ``momentum``
    starts SGD from given buffers (by parameter name), e.g. carried over a structured pruning step.

    A NaN or infinite loss or weight raises :class:`~.divergence.DivergenceError` naming ``run_name``
    (default: ``state_dir``, else ``metrics_csv``), the epoch and the first bad step; that epoch's
    metrics and state are not saved, and a metrics CSV of the run is removed.
    """
    compute = compute or ComputeHparams()
    fingerprint = fingerprint or f"{hp.fingerprint()}-{seeds.fingerprint()}"
    run_name = run_name or str(state_dir or metrics_csv or "(unnamed)")
    trainer = _Trainer(model, splits, hp, seeds, compute, mask, callbacks, fingerprint, momentum, run_name)
    with trainer.cleanup:
        try:
            resumed = trainer.run(
                state_dir=Path(state_dir) if state_dir is not None else None,
                metrics_csv=Path(metrics_csv) if metrics_csv is not None else None,
                eval_before=eval_before,
                initial_state=initial_state,
                snapshots={int(k): Path(v) for k, v in (snapshots or {}).items()},
            )
        except DivergenceError:
            if metrics_csv is not None and trainer.world.main and trainer.owns_metrics:
                Path(metrics_csv).unlink(missing_ok=True)  # no record of a run that cannot finish
            raise
    return TrainResult(
        model=trainer.model,
        mask=trainer.ctx.mask,
        history=trainer.history,
        resumed_from_epoch=resumed,
        selected_epoch=trainer.selected_epoch,
        momentum=trainer.momentum(),
    )
