"""The one-shot magnitude pruning study: prune a dense checkpoint, then finetune with the mask.

Pruning and finetuning run in one job (the pruned checkpoint is still written as an artefact):
pruning takes milliseconds, and a separate job per sparsity would cost more to start than to run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ...config import ComputeHparams, DataHparams, TrainHparams
from ...io.provenance import Role
from ...models.checkpoint import load_checkpoint, save_checkpoint
from ...sparsity.magnitude import Scope, magnitude_mask
from ...sparsity.mask import prunable_parameters
from ...train.engine import TrainResult
from ...train.run import RunFiles, run_finetuning


def prune_checkpoint(
    src: str | Path,
    out: str | Path,
    *,
    sparsity: float,
    scope: Scope,
    exclude: Iterable[str] = (),
    verify: bool = True,
) -> dict:
    """Prune the Conv2d/Linear weights of ``src`` to ``sparsity`` by magnitude and save to ``out``.

    Weights already masked in ``src`` stay pruned. Returns the new sidecar (with the realised
    per-layer sparsity under ``sparsity``). ``verify``: see ``load_checkpoint``.
    """
    ckpt = load_checkpoint(src, verify=verify)
    names = prunable_parameters(ckpt.model, exclude=exclude)
    mask = magnitude_mask(ckpt.model, sparsity, scope=scope, names=names, current=ckpt.mask)
    mask.apply_(ckpt.model)
    role: Role = "dense" if ckpt.mask is None else "pruned"  # the CLI may prune a pruned checkpoint further
    meta = {
        "method": f"oneshot_{scope}",
        "dataset": ckpt.meta.get("dataset"),
        "hparams": ckpt.meta.get("hparams"),
        "pruning": {"scope": scope, "target_sparsity": sparsity, "exclude": sorted(exclude)},
        "parent": {"path": str(src), "tensors_sha256": ckpt.meta.get("tensors_sha256")},
    }
    return save_checkpoint(out, ckpt.model, ckpt.spec, mask=mask, meta=meta, parents=(ckpt.as_parent(role, src),))


def prune_and_finetune(
    dense: str | Path,
    pruned_out: str | Path,
    files: RunFiles,
    *,
    sparsity: float,
    scope: Scope,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """Prune ``dense`` to ``sparsity`` (saved at ``pruned_out``), then finetune it into ``files``.

    The finetuning CSV's epoch-0 row is the accuracy right after pruning. Pruning is
    deterministic, so a retried job rebuilds the same pruned checkpoint and resumes its training.
    """
    prune_checkpoint(dense, pruned_out, sparsity=sparsity, scope=scope)
    return run_finetuning(
        files,
        init_checkpoint=pruned_out,
        data=data,
        recipe=recipe,
        seed=seed,
        compute=compute,
        method=f"oneshot_{scope}",
        role="pruned",
    )
