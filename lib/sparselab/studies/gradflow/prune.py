"""The pruning phase of the gradient-flow study (Lubana & Dick, ICLR 2021): prune+train rounds.

One job runs the pruning phase of one model x measure x target x seed: optional warm-up, then
``rounds`` rounds of [train ``epochs_per_round`` epochs at the round recipe (fresh optimizer, so
momentum restarts, as in the original, unless ``preserve_momentum``) -> score every filter -> rank
globally -> remove]. It resumes after a kill at the last finished round (each round's model is kept
in the state directory).

Each round logs test/val accuracy before and right after pruning, parameters and FLOPs (as
computed and alive), the widths, and Kendall's tau between the measure's ranking of all filters
and the magnitude ranking (the paper's analysis of how each measure relates to magnitude).
Differences from the original code are listed in docs/gradflow.md.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import itertools
import json
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ...compute import Placement, place
from ...config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ...config.hparams import fingerprint_of
from ...data import DatasetSplits
from ...data.loaders import make_loader, mix_seed
from ...io.atomic import atomic_path, atomic_write_json
from ...io.provenance import Parent
from ...metrics.classification import evaluate
from ...metrics.complexity import complexity
from ...models.access import module_tensor
from ...models.checkpoint import load_checkpoint, save_checkpoint
from ...models.spec import ArchSpec
from ...sparsity.mask import Mask
from ...structured.dependency import ChannelGroup, channel_groups
from ...structured.measures import MEASURES, ImportanceTracker, importance
from ...structured.ranking import minimum_widths, ranking_rows, remaining_rows, select_filters
from ...structured.removal import prune_filters, slice_like_parameters, widths
from ...train.callbacks import Callback, TrainContext
from ...train.engine import train
from ..base.setup import RunSetup
from .options import GradflowOptions

log = logging.getLogger("sparselab")

__all__ = ["PruneSpec", "RoundFiles", "kendall_tau_to_magnitude", "run_prune_rounds"]


@dataclasses.dataclass(frozen=True)
class PruneSpec(GradflowOptions):
    """How one pruning phase runs: the experiment's options (defaults: the original's, gradflow
    notes §1-§3) and the run's measure, target and rounds."""

    measure: str
    target: float = 0.75  # fraction of ranking rows pruned after the last round
    rounds: int = 25

    def validate(self, path: str = "") -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"unknown importance measure {self.measure!r}; choose one of: {', '.join(MEASURES)}")
        if not 0.0 <= self.target < 1.0:
            raise ValueError(f"pruning target must be a fraction in [0, 1), got {self.target}")
        if self.rounds < 1 or self.importance_batches < 1 or self.importance_batch_size < 1:
            raise ValueError("rounds, importance_batches and importance_batch_size must be >= 1")
        if self.warmup_epochs < 0 or not 0.0 <= self.min_fraction < 1.0 or not 0.0 < self.alpha <= 1.0:
            raise ValueError("warmup_epochs >= 0, 0 <= min_fraction < 1 and 0 < alpha <= 1 are required")

    def to_dict(self) -> dict[str, Any]:
        """The job's hparams record: measure, target and rounds first, then the options."""
        options = super().to_dict()
        return {name: options.pop(name) for name in ("measure", "target", "rounds")} | options

    @property
    def importance_samples(self) -> int:
        return self.importance_batches * self.importance_batch_size


@dataclasses.dataclass(frozen=True)
class RoundFiles:
    """Outputs of the pruning phase and its resume directory (not a declared output)."""

    checkpoint: Path
    rounds_csv: Path
    hparams_json: Path
    state_dir: Path


class _Tracker(Callback):
    """Feeds the running importance of ``biased_loss_tracked`` from the last steps of each epoch."""

    def __init__(self, tracker: ImportanceTracker, last_steps: int) -> None:
        self.tracker, self.last_steps = tracker, last_steps

    def on_step_end(self, ctx: TrainContext) -> None:
        in_epoch = ctx.step - (ctx.epoch - 1) * ctx.steps_per_epoch  # 1-based step within the epoch
        if in_epoch > ctx.steps_per_epoch - self.last_steps:
            self.tracker.update()

    def state_dict(self) -> dict[str, Any]:  # a resumed round continues the running average
        return {"scores": self.tracker.scores()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, s in state["scores"].items():
            current = self.tracker._scores[name]
            self.tracker._scores[name] = s.to(device=current.device, dtype=current.dtype)


def kendall_tau_to_magnitude(
    scores: dict[str, torch.Tensor],
    model: nn.Module,
    groups: Sequence[ChannelGroup],
    alive: dict[str, torch.Tensor],
    protect: Sequence[str] = (),
) -> float:
    """Kendall's tau-b between a measure's scores and the filters' L2 norms, over all alive filters
    that the global ranking sees (NaN when either is constant)."""
    from scipy.stats import kendalltau  # lazy: about 2 s to import, for one statistic per round

    a, b = [], []
    for g in groups:
        if g.producer in protect:
            continue
        live = alive[g.producer]
        w = module_tensor(model.get_submodule(g.producer), "weight").detach()
        a.append(scores[g.producer][live].double())
        b.append(w.reshape(w.shape[0], -1).norm(dim=1)[live].double().cpu())
    x, y = torch.cat(a).numpy(), torch.cat(b).numpy()
    tau = kendalltau(x, y).statistic
    return float(tau) if tau is not None else math.nan


def _alive(groups: Sequence[ChannelGroup], mask: Mask | None) -> dict[str, torch.Tensor]:
    """Filters still present: all of a physically narrowed group; a masked group's live rows."""
    out = {}
    for g in groups:
        key = f"{g.producer}.weight"
        if mask is not None and key in mask:
            out[g.producer] = mask[key].reshape(g.width, -1).any(dim=1).cpu()
        else:
            out[g.producer] = torch.ones(g.width, dtype=torch.bool)
    return out


def _importance_batches(
    splits: DatasetSplits, prune: PruneSpec, seed: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``importance_batches`` minibatches of a fresh shuffled, augmented train loader."""
    loader = make_loader(
        splits.train,
        prune.importance_batch_size,
        shuffle=True,
        order_seed=mix_seed(seed, 1),
        aug_seed=mix_seed(seed, 2),
        device=device,
    )
    loader.set_epoch(0)
    return list(itertools.islice(iter(loader), prune.importance_batches))


def _grasp_loader(splits: DatasetSplits, prune: PruneSpec, seed: int, device: torch.device) -> Any:
    loader = make_loader(
        splits.train,
        prune.importance_batch_size,
        shuffle=True,
        order_seed=mix_seed(seed, 3),
        aug_seed=mix_seed(seed, 4),
        device=device,
    )
    loader.set_epoch(0)
    return loader


def _scores(
    model: nn.Module,
    prune: PruneSpec,
    splits: DatasetSplits,
    recipe: TrainHparams,
    seed: int,
    init: nn.Module | None,
    tracker: ImportanceTracker | None,
) -> dict[str, torch.Tensor]:
    options: dict[str, Any] = {"temperature": recipe.temperature}
    device = next(model.parameters()).device  # the batches are made where the model is
    if prune.measure in ("grasp", "grad_preserve"):
        data: Any = _grasp_loader(splits, prune, seed, device)
        options |= {
            "grasp_temperature": prune.grasp_temperature,
            "grasp_samples": prune.importance_samples,
            "num_classes": splits.info.num_classes,
        }
    elif prune.measure in ("mag_based", "l1", "bn"):
        data = None
    elif prune.measure == "biased_loss_tracked":
        data, options = None, {"tracker": tracker}
    else:
        data = _importance_batches(splits, prune, seed, device)
    if prune.use_init and prune.measure in ("biased_loss", "loss_based"):
        options["use_init"] = init
    if prune.use_l2 and prune.measure == "loss_based":
        options["use_l2"] = True
    return importance(model, prune.measure, data, **options)


def _evaluate(model: nn.Module, splits: DatasetSplits, recipe: TrainHparams, placement: Placement) -> dict[str, float]:
    """Test and val loss/top-1: plain predictions, so under the job's autocast where it is on."""
    out = {}
    for name, ds in (("test", splits.test), ("val", splits.val)):
        if ds is not None:
            loader = make_loader(ds, recipe.eval_batch_size, shuffle=False, **placement.loader_options())
            m = evaluate(model, loader, placement.device, **placement.options())
            out[f"{name}_top1"], out[f"{name}_loss"] = m["top1"], m["loss"]
    return out


_ROUND_FIELDS = (
    "round",
    "epochs_trained",
    "rows",
    "rows_target",
    "train_loss",
    "train_top1",
    "test_top1_before",
    "val_top1_before",
    "test_top1_after",
    "val_top1_after",
    "params",
    "params_alive",
    "flops",
    "flops_alive",
    "kendall_tau_magnitude",
    "widths",
)


def _write_rounds(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_ROUND_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _read_rounds(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _forget_other_runs(state: Path, hparams: dict[str, Any]) -> None:
    """Round files in ``state`` belong to the run whose hparams are stored beside them; those of
    another configuration (edited pruning options, same output path) are removed, not resumed."""
    stored = state / "hparams.json"
    if stored.exists():
        if fingerprint_of(json.loads(stored.read_text())) == fingerprint_of(json.loads(json.dumps(hparams))):
            return
        log.warning("gradflow: %s holds rounds of another configuration; starting over", state)
        for path in state.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    atomic_write_json(stored, hparams)


def _save_momentum(path: Path, momentum: dict[str, torch.Tensor]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in momentum.items()}, str(tmp))


def _load_momentum(path: Path) -> dict[str, torch.Tensor] | None:
    return load_file(str(path)) if path.exists() else None


def _save(
    path: Path,
    model: nn.Module,
    spec: ArchSpec,
    mask: Mask | None,
    meta: dict[str, Any],
    parents: tuple[Parent, ...] | None = None,
) -> None:
    """Checkpoint a CPU copy (the model stays on its device); ``parents``: the sidecar's lineage
    (None for the rounds' resume files, which are no results)."""
    save_checkpoint(
        path,
        copy.deepcopy(model).cpu(),
        spec,
        mask=mask.to_device("cpu") if mask is not None else None,
        meta=meta,
        parents=parents,
    )


def run_prune_rounds(
    files: RoundFiles,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    prune: PruneSpec,
    seed: int,
    compute: ComputeHparams,
) -> tuple[nn.Module, Mask | None, list[dict[str, Any]]]:
    """The pruning phase (see the module docstring); ``recipe`` is one round's training (its
    ``epochs`` are the epochs per round; warm-up uses the same recipe). Returns the pruned model,
    its mask (residual-stream filters) and the per-round records."""
    prune.validate()
    run = RunSetup.fresh(data, model, seed)
    seeds, splits, spec = run.seeds, run.splits, run.spec
    shape = splits.info.input_shape
    hparams = run.hparams(f"gradflow_{prune.measure}", recipe, recipe_key="round_train", prune=prune.to_dict())
    state = files.state_dir
    state.mkdir(parents=True, exist_ok=True)
    _forget_other_runs(state, hparams)

    net = run.build()
    init = copy.deepcopy(net) if prune.use_init else None
    dense_groups = channel_groups(net, shape)
    unknown = sorted(set(prune.protect) - {g.producer for g in dense_groups})
    if unknown:
        raise ValueError(
            f"protect names {unknown}, which are not prunable convs of {model.arch}; "
            f"prunable: {', '.join(g.producer for g in dense_groups)}"
        )
    minimum = minimum_widths(dense_groups, prune.min_fraction)
    rows_0 = ranking_rows(dense_groups, protect=prune.protect)
    mask: Mask | None = None
    records: list[dict[str, Any]] = []
    start = 1
    done = sorted(state.glob("round*.safetensors"), key=lambda p: int(p.stem[5:]))
    if done and (state / "rounds.csv").exists():  # resume after the last finished round
        ckpt = load_checkpoint(done[-1])
        net, mask = ckpt.model, ckpt.mask
        start = int(done[-1].stem[5:]) + 1
        records = _read_rounds(state / "rounds.csv")[: start - 1]
        if init is not None:
            init = load_checkpoint(state / f"init{start - 1}.safetensors").model
        log.info("gradflow: resuming after round %d", start - 1)

    placement = place(compute)  # importance scores stay exact: they never run under autocast
    net = placement.model(net)
    if start == 1 and prune.warmup_epochs > 1:
        warm = dataclasses.replace(recipe, epochs=prune.warmup_epochs - 1)
        result = train(
            net,
            splits,
            warm,
            seeds=seeds,
            compute=compute,
            state_dir=state / "warmup",
            fingerprint=f"gradflow-warmup-{seed}-{warm.fingerprint()}",
            run_name=f"{files.checkpoint.parent} (warm-up)",
        )
        net = result.model
    tracker = ImportanceTracker(net, alpha=prune.alpha) if prune.measure == "biased_loss_tracked" else None
    momentum = _load_momentum(state / f"momentum{start - 1}.safetensors") if prune.preserve_momentum else None
    for k in range(start, prune.rounds + 1):
        round_seeds = dataclasses.replace(
            seeds, data_order=mix_seed(seeds.data_order, k), augmentation=mix_seed(seeds.augmentation, k)
        )
        if tracker is not None:
            tracker = ImportanceTracker(net, alpha=prune.alpha)  # zeros, the current widths
        callbacks = (_Tracker(tracker, prune.track_batches),) if tracker is not None else ()
        result = train(
            net,
            splits,
            recipe,
            seeds=round_seeds,
            compute=compute,
            mask=mask,
            callbacks=callbacks,
            state_dir=state / f"train{k}",
            fingerprint=f"gradflow-round{k}-{seed}-{recipe.fingerprint()}",
            momentum=momentum,
            run_name=f"{files.checkpoint.parent} (round {k})",
        )
        net = result.model
        shutil.rmtree(state / f"train{k}", ignore_errors=True)
        before = _evaluate(net, splits, recipe, placement)
        groups = channel_groups(net, shape)
        alive = _alive(groups, mask)
        scores = _scores(net, prune, splits, recipe, mix_seed(seed, k), init, tracker)
        tau = kendall_tau_to_magnitude(scores, net, groups, alive, prune.protect)
        rows_now = ranking_rows(groups, alive, prune.protect)
        rows_target = remaining_rows(rows_0, prune.target, prune.rounds, k)
        keep = select_filters(scores, groups, max(0, rows_now - rows_target), minimum, alive, prune.protect)
        net, mask_new = prune_filters(net, groups, keep)
        mask = mask_new if len(mask_new) else None
        if init is not None:  # the initial weights, narrowed in lockstep (same filters kept)
            init = prune_filters(init, channel_groups(init, shape), keep)[0]
        if prune.preserve_momentum and result.momentum:
            momentum = slice_like_parameters(result.model, groups, keep, result.momentum)
        after = _evaluate(net, splits, recipe, placement)
        cost = complexity(net, shape, mask)
        new_groups = channel_groups(net, shape)
        records.append(
            {
                "round": k,
                "epochs_trained": result.final.get("epoch"),
                "rows": ranking_rows(new_groups, _alive(new_groups, mask), prune.protect),
                "rows_target": rows_target,
                "train_loss": result.final.get("train_loss"),
                "train_top1": result.final.get("train_top1"),
                "test_top1_before": before.get("test_top1"),
                "val_top1_before": before.get("val_top1"),
                "test_top1_after": after.get("test_top1"),
                "val_top1_after": after.get("val_top1"),
                "params": cost.params,
                "params_alive": cost.params_alive,
                "flops": cost.flops,
                "flops_alive": cost.flops_alive,
                "kendall_tau_magnitude": tau,
                "widths": " ".join(str(int(_alive(new_groups, mask)[g.producer].sum())) for g in new_groups),
            }
        )
        log.info(
            "gradflow round %d/%d (%s): rows %d -> %d, test top-1 %.4f -> %.4f, tau %.3f",
            k,
            prune.rounds,
            prune.measure,
            rows_now,
            records[-1]["rows"],
            before.get("test_top1", math.nan),
            after.get("test_top1", math.nan),
            tau,
        )
        _save(state / f"round{k}.safetensors", net, spec.with_widths(widths(net, new_groups)), mask, {"round": k})
        if init is not None:
            _save(
                state / f"init{k}.safetensors",
                init,
                spec.with_widths(widths(init, channel_groups(init, shape))),
                None,
                {},
            )
        if momentum is not None:
            _save_momentum(state / f"momentum{k}.safetensors", momentum)
        _write_rounds(state / "rounds.csv", records)
        shutil.rmtree(state / "warmup", ignore_errors=True)
        olds = [
            *state.glob("round*.safetensors"),
            *state.glob("init*.safetensors"),
            *state.glob("momentum*.safetensors"),
        ]
        for old in olds:  # the last finished round's only
            if old.stem not in (f"round{k}", f"init{k}", f"momentum{k}"):
                old.unlink()
                old.with_suffix(".json").unlink(missing_ok=True)
    final_groups = channel_groups(net, shape)
    meta = {
        "method": hparams["method"],
        "dataset": data.to_dict(),
        "hparams": hparams,
        "metrics": {k: v for k, v in records[-1].items() if k != "widths"} if records else {},
    }
    # a root: the pruning phase trains its model from scratch (warm-up and rounds all in this job)
    _save(files.checkpoint, net, spec.with_widths(widths(net, final_groups)), mask, meta, parents=())
    _write_rounds(files.rounds_csv, records)
    atomic_write_json(files.hparams_json, hparams)  # last: a diverged round leaves no output (DivergenceError)
    return net, mask, records
