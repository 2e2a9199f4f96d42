"""The one-shot study's N:M (e.g. 2:4) runs, on the layers that can be N:M (input size a multiple
of M; :func:`~sparselab.sparsity.nm.nm_eligible_parameters`), the other weights left dense:

- ``nm_oneshot``: the dense model pruned once to N:M by magnitude (the pruned checkpoint is saved),
  then finetuned with the mask enforced every step, as the unstructured one-shot runs are;
- ``nm_srste``: SR-STE from the dense model (:class:`~sparselab.dst.nm.SRSTE`): the engine starts
  without a mask, the callback re-selects the N:M mask from the dense weights (with ``ramp`` > 0
  fading the pruned weights out gradually), and its last mask becomes the checkpoint's.

Both record ``nm`` (the pattern, the N:M layers and those left dense) in their hparams, and both
check the checkpoint they wrote: its mask and weights N:M on every listed layer after a save/load
round trip (:func:`check_nm_checkpoint`), so a run that lost the pattern fails instead of being
tabled as 2:4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ...config import ComputeHparams, DataHparams, TrainHparams
from ...dst.nm import SRSTE
from ...io.provenance import Role
from ...models.checkpoint import load_checkpoint, save_checkpoint
from ...sparsity.mask import prunable_parameters
from ...sparsity.nm import is_nm, nm_eligible_parameters, nm_mask
from ...train.callbacks import Callback
from ...train.engine import TrainResult
from ...train.run import RunFiles, train_and_save
from ..base.setup import RunSetup

__all__ = ["check_nm_checkpoint", "nm_layers", "nm_prune_checkpoint", "prune_and_finetune_nm", "train_srste"]


class NmViolation(RuntimeError):
    """A checkpoint that should be N:M is not (its mask, or its weights, on a listed layer)."""


def nm_layers(model: nn.Module, n: int, m: int) -> dict[str, Any]:
    """The ``nm`` record of a run: the pattern, the prunable weights made N:M and those that stay
    dense (input size not a multiple of M: a first convolution on 1 or 3 channels)."""
    eligible = nm_eligible_parameters(model, m)
    return {
        "n": n,
        "m": m,
        "layers": eligible,
        "dense_layers": [k for k in prunable_parameters(model) if k not in eligible],
    }


def check_nm_checkpoint(path: str | Path, n: int, m: int, names: Sequence[str]) -> None:
    """Load ``path`` (verified) and raise :class:`NmViolation` unless it has a mask and, on every
    one of ``names``, both the mask and the weights are N:M."""
    ckpt = load_checkpoint(path)
    if ckpt.mask is None:
        raise NmViolation(f"{path}: no mask saved, so it is not {n}:{m}")
    params = dict(ckpt.model.named_parameters())
    bad = [k for k in names if k not in ckpt.mask or not is_nm(ckpt.mask[k], n, m) or not is_nm(params[k], n, m)]
    if bad:
        raise NmViolation(f"{path}: not {n}:{m} on {bad} (mask or weights)")


def nm_prune_checkpoint(src: str | Path, out: str | Path, *, n: int, m: int, verify: bool = True) -> dict:
    """Prune the N:M-eligible weights of the dense checkpoint ``src`` to N:M by magnitude and save
    to ``out`` (the mask covers those weights only). Returns the sidecar."""
    ckpt = load_checkpoint(src, verify=verify)
    if ckpt.mask is not None:
        raise ValueError(f"{src}: N:M one-shot pruning starts from a dense checkpoint, this one has a mask")
    record = nm_layers(ckpt.model, n, m)
    mask = nm_mask(ckpt.model, n, m, names=record["layers"])
    mask.apply_(ckpt.model)
    meta = {
        "method": "nm_oneshot",
        "dataset": ckpt.meta.get("dataset"),
        "hparams": ckpt.meta.get("hparams"),
        "nm": record,
        "parent": {"path": str(src), "tensors_sha256": ckpt.meta.get("tensors_sha256")},
    }
    return save_checkpoint(out, ckpt.model, ckpt.spec, mask=mask, meta=meta, parents=(ckpt.as_parent("dense", src),))


def _train_from(
    init: str | Path,
    files: RunFiles,
    method: str,
    *,
    n: int,
    m: int,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
    role: Role,
    callbacks: Callable[[list[str]], Sequence[Callback]] = lambda layers: (),
    extra: dict[str, Any] | None = None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train ``init`` (with its mask, if any; its parent in ``role``) into ``files`` with the
    ``callbacks`` of its N:M layers; the hparams record ``nm`` (and ``extra``). Epoch 0 of the CSV
    is its start point."""
    run = RunSetup.from_checkpoint(init, data, seed)
    record = nm_layers(run.checkpoint.model, n, m)
    hparams = run.hparams(method, recipe, parent=run.parent(init), nm={**record, **(extra or {})})
    result = train_and_save(
        files,
        run,
        run.checkpoint.model,
        run.checkpoint.mask,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=True,
        callbacks=tuple(callbacks(record["layers"])),
        parents=(run.checkpoint.as_parent(role, init),),
    )
    return result, record


def prune_and_finetune_nm(
    dense: str | Path,
    pruned_out: str | Path,
    files: RunFiles,
    *,
    n: int,
    m: int,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Prune ``dense`` once to N:M (saved at ``pruned_out``), then finetune it into ``files`` with
    the mask enforced (and ``callbacks``); the finetuned checkpoint is checked to be N:M."""
    nm_prune_checkpoint(dense, pruned_out, n=n, m=m)
    result, record = _train_from(
        pruned_out,
        files,
        "nm_oneshot",
        n=n,
        m=m,
        data=data,
        recipe=recipe,
        seed=seed,
        compute=compute,
        role="pruned",
        callbacks=lambda layers: tuple(callbacks),
    )
    check_nm_checkpoint(files.checkpoint, n, m, record["layers"])
    return result


def train_srste(
    dense: str | Path,
    files: RunFiles,
    *,
    n: int,
    m: int,
    decay: float,
    period: int | None,
    ramp: float = 0.0,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """SR-STE from the dense checkpoint ``dense`` (no mask: the callback keeps the dense weights and
    shows the model their N:M part; ``callbacks`` run after it); its last mask is the checkpoint's,
    checked to be N:M."""
    result, record = _train_from(
        dense,
        files,
        "nm_srste",
        n=n,
        m=m,
        data=data,
        recipe=recipe,
        seed=seed,
        compute=compute,
        role="dense",
        callbacks=lambda layers: (SRSTE(layers, n=n, m=m, decay=decay, period=period, ramp=ramp), *callbacks),
        extra={"decay": decay, "period": period, "ramp": ramp},
    )
    check_nm_checkpoint(files.checkpoint, n, m, record["layers"])
    return result
