"""IMP with rewinding in the path-norm study (Figure 4), each round logging
:class:`.analysis.PathNormAnalysis` per epoch: round 0 trains densely and saves the full training
state after the rewind epoch; round r prunes the previous round's final weights (per layer, a
fraction of the *remaining* weights: 20% of conv layers, 10% of the final linear layer), rewinds
weights, BN statistics, optimizer momentum, schedule position and RNG to that state and retrains.
Masks come from the final weights (the original's "best" checkpoint was also the last epoch).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ...config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ...io.atomic import atomic_path
from ...io.provenance import parent_of_file
from ...sparsity.magnitude import magnitude_mask
from ...sparsity.mask import Mask, prunable_parameters
from ...train.engine import TrainResult
from ...train.run import RunFiles, train_and_save
from ...train.state import TrainState
from ..base.setup import RunSetup
from .analysis import PathNormAnalysis
from .options import AnalysisSpec

log = logging.getLogger("sparselab")


def imp_mask(
    model: nn.Module,
    current: Mask | None,
    *,
    conv_fraction: float = 0.2,
    linear_fraction: float = 0.1,
    scope: Literal["layerwise", "global"] = "layerwise",
) -> Mask:
    """The next IMP mask: prune ``conv_fraction`` of the remaining weights of every Conv2d (and
    of every Linear but the last, for MLPs) and ``linear_fraction`` of the last Linear layer's.

    ``global`` ranks all layers but the last jointly (one threshold), the last layer on its own.
    Counts are exact (ties broken deterministically), so densities follow 0.8^r and 0.9^r.
    """
    names = prunable_parameters(model)
    linears = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    last = linears[-1] if linears else None
    body = [n for n in names if n != last]
    params = dict(model.named_parameters())

    def remaining(n: str) -> int:
        return int(current[n].sum()) if current is not None and n in current else params[n].numel()

    def target(names_: list[str], fraction: float) -> float:
        total = sum(params[n].numel() for n in names_)
        keep = sum(remaining(n) for n in names_)
        return 1.0 - keep * (1.0 - fraction) / total

    masks: dict[str, torch.Tensor] = {}
    if body:
        if scope == "global":
            masks.update(magnitude_mask(model, target(body, conv_fraction), "global", body, current).items())
        else:
            per_layer = {n: target([n], conv_fraction) for n in body}
            masks.update(magnitude_mask(model, per_layer, "layerwise", body, current).items())
    if last is not None:
        masks.update(
            magnitude_mask(model, {last: target([last], linear_fraction)}, "layerwise", [last], current).items()
        )
    return Mask(masks)


def run_imp_dense(
    files: RunFiles,
    rewind_state: str | Path,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    seed: int,
    rewind_epoch: int,
    analysis: AnalysisSpec,
    compute: ComputeHparams,
) -> TrainResult:
    """IMP round 0: dense training, logging the analysis every epoch; the full training state
    after ``rewind_epoch`` epochs is saved to ``rewind_state`` (the rewind point of every round)."""
    if not 1 <= rewind_epoch < recipe.epochs:
        raise ValueError(f"rewind_epoch {rewind_epoch} must be in [1, epochs={recipe.epochs})")
    run = RunSetup.fresh(data, model, seed)
    splits = run.splits
    hparams = run.hparams(
        "imp_round0", recipe, imp={"round": 0, "rewind_epoch": rewind_epoch}, analysis=dataclasses.asdict(analysis)
    )
    net = run.build()
    # The snapshot lives beside the resume state (Snakemake deletes the declared outputs of a
    # killed job; a resumed run past the rewind epoch could not write it again).
    snapshot = files.state_dir / "rewind.pt"
    result = train_and_save(
        files,
        run,
        net,
        None,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=False,
        callbacks=(PathNormAnalysis(analysis, splits.info.input_shape),),
        parents=(),
        snapshots={rewind_epoch: snapshot},
    )
    if not snapshot.exists():
        raise RuntimeError(f"the rewind state after epoch {rewind_epoch} was not written to {snapshot}")
    with atomic_path(rewind_state) as tmp:
        tmp.write_bytes(snapshot.read_bytes())
    snapshot.unlink()
    return result


def run_imp_round(
    files: RunFiles,
    *,
    previous: str | Path,
    rewind_state: str | Path,
    round_index: int,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    conv_fraction: float,
    linear_fraction: float,
    scope: Literal["layerwise", "global"],
    analysis: AnalysisSpec,
    compute: ComputeHparams,
) -> TrainResult:
    """IMP round r >= 1: prune the previous round's final weights, rewind, retrain to the end.
    Its parents: the previous round's checkpoint and the rewind state (a training-state file)."""
    run = RunSetup.from_checkpoint(previous, data, seed)
    prev, splits = run.checkpoint, run.splits
    mask = imp_mask(prev.model, prev.mask, conv_fraction=conv_fraction, linear_fraction=linear_fraction, scope=scope)
    state = TrainState.load(rewind_state)
    net = prev.model  # architecture and buffers; the rewind state overwrites every tensor
    hparams = run.hparams(
        f"imp_{scope}",
        recipe,
        imp={
            "round": round_index,
            "rewind_epoch": state.epoch,
            "conv_fraction": conv_fraction,
            "linear_fraction": linear_fraction,
            "scope": scope,
            "sparsity": mask.sparsity,
        },
        parent=run.parent(previous),
        rewind={"path": str(rewind_state), "epoch": state.epoch},
        analysis=dataclasses.asdict(analysis),
    )
    log.info("IMP round %d: sparsity %.4f, rewinding to epoch %d", round_index, mask.sparsity, state.epoch)
    return train_and_save(
        files,
        run,
        net,
        mask,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=False,
        callbacks=(PathNormAnalysis(analysis, splits.info.input_shape),),
        parents=(prev.as_parent("previous_round", previous), parent_of_file("rewind", rewind_state)),
        initial_state=state,
    )
