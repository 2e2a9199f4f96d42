"""One training run end to end: data, model (fresh or from a checkpoint), engine, checkpoint.

These are the functions the workflow's training rules call. Every run writes its checkpoint
(safetensors + sidecar), its per-epoch metrics CSV and its resolved ``hparams.json``; its
resumable state lives in ``state_dir``, which is not a declared output of the rule.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ..config.hparams import fingerprint_of
from ..io.atomic import atomic_write_json
from ..io.provenance import Parent, Role
from ..models.checkpoint import save_checkpoint
from ..sparsity.mask import Mask
from .callbacks import Callback
from .engine import TrainResult, train
from .setup import RunSetup  # build_seeded: re-exported for tests and benches
from .setup import build_seeded as build_seeded
from .state import RESUME_FILE, TrainState

log = logging.getLogger("sparselab")


def _final_metrics(result: TrainResult) -> dict[str, Any]:
    keys = (
        "epoch",
        "test_loss",
        "test_top1",
        "test_top5",
        "val_loss",
        "val_top1",
        "val_top5",
        "train_loss",
        "train_top1",
    )
    return {k: result.final.get(k) for k in keys if result.final.get(k) is not None}


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """Where a training run writes: checkpoint (+ sidecar), per-epoch metrics, resolved hparams,
    and its resume state (a side directory, never a declared output of a rule)."""

    checkpoint: Path
    metrics_csv: Path
    hparams_json: Path
    state_dir: Path

    @classmethod
    def from_snakemake(cls, smk: Any) -> RunFiles:
        """A training rule's files, by the rules' convention: outputs ``model``, ``metrics``,
        ``hparams`` and the ``state_dir`` param."""
        out = smk.output
        return cls(Path(out.model), Path(out.metrics), Path(out.hparams), Path(smk.params.state_dir))

    @classmethod
    def in_directory(cls, directory: str | Path) -> RunFiles:
        d = Path(directory)
        return cls(d / "model.safetensors", d / "metrics.csv", d / "hparams.json", d / ".resume")


def train_and_save(
    files: RunFiles,
    run: RunSetup,
    model: nn.Module,
    mask: Mask | None,
    hparams: dict[str, Any],
    *,
    recipe: TrainHparams,
    compute: ComputeHparams,
    eval_before: bool,
    callbacks: tuple[Callback, ...],
    parents: Sequence[Parent],
    initial_state: TrainState | None = None,
    snapshots: Mapping[int, str | Path] | None = None,
) -> TrainResult:
    """Train (resumably) and save checkpoint, metrics and hparams; ``run`` gives the data, splits,
    replicate seeds and the architecture saved with the checkpoint; ``initial_state`` rewinds to a
    saved state, ``snapshots`` saves the state after given epochs (see :func:`..engine.train`).
    ``parents`` go into the sidecar (:mod:`sparselab.io.provenance`; ``()`` from scratch): every
    caller states them, so no training job writes a checkpoint of unknown lineage.

    hparams.json and the checkpoint are written once training has ended: a run that diverges raises
    :class:`~.divergence.DivergenceError` (naming the checkpoint's directory) and leaves none of its
    outputs (the engine removes its metrics CSV)."""
    result = train(
        model,
        run.splits,
        recipe,
        seeds=run.seeds,
        compute=compute,
        mask=mask,
        callbacks=callbacks,
        state_dir=files.state_dir,
        metrics_csv=files.metrics_csv,
        eval_before=eval_before,
        initial_state=initial_state,
        snapshots=snapshots,
        fingerprint=fingerprint_of(hparams),
        run_name=str(files.checkpoint.parent),
    )
    if result.mask is not None:
        realised = Mask.from_zeros(result.model, result.mask.names()).sparsity
        if realised + 1e-12 < result.mask.sparsity:
            raise RuntimeError(f"mask not enforced: weights {realised:.4f} sparse, mask {result.mask.sparsity:.4f}")
    atomic_write_json(files.hparams_json, hparams)
    save_checkpoint(
        files.checkpoint,
        result.model.cpu(),
        run.spec,
        mask=result.mask.to_device("cpu") if result.mask is not None else None,
        meta={
            "method": hparams["method"],
            "dataset": run.data.to_dict(),
            "hparams": hparams,
            "metrics": _final_metrics(result),
        },
        parents=parents,
    )
    (files.state_dir / RESUME_FILE).unlink(missing_ok=True)  # the run is complete: its outputs supersede it
    return result


def run_training(
    files: RunFiles,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
    method: str = "dense",
    callbacks: tuple[Callback, ...] = (),
) -> TrainResult:
    """Train a freshly initialised model (the init seed derives from ``seed``)."""
    run = RunSetup.fresh(data, model, seed)
    hparams = run.hparams(method, recipe, parent=None)
    return train_and_save(
        files,
        run,
        run.build(),
        None,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=False,
        callbacks=callbacks,
        parents=(),
    )


def run_finetuning(
    files: RunFiles,
    *,
    init_checkpoint: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
    method: str = "finetune",
    callbacks: tuple[Callback, ...] = (),
    role: Role = "pruned",
) -> TrainResult:
    """Continue training a checkpoint with its mask enforced; epoch 0 of the CSV is its start point.
    The checkpoint is the new one's parent in ``role``."""
    run = RunSetup.from_checkpoint(init_checkpoint, data, seed)
    hparams = run.hparams(method, recipe, parent=run.parent(init_checkpoint))
    return train_and_save(
        files,
        run,
        run.checkpoint.model,
        run.checkpoint.mask,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=True,
        callbacks=callbacks,
        parents=(run.checkpoint.as_parent(role, init_checkpoint),),
    )
