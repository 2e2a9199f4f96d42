"""Full finetuning of a sparse upstream on a downstream task (Iofinova et al. 2022, transfer notes §4).

The upstream network (our checkpoint format: weights and masks) gets a new dense head for the
downstream classes (PyTorch's default init); every other tensor is loaded from the upstream and the
backbone masks are kept, so the engine enforces them after every step and the upstream sparsity
survives exactly (checked at the end and recorded in the sidecar). The paper's recipe: SGD lr 0.01
for Aircraft and Cars, 0.001 otherwise, momentum 0.9, weight decay 5e-4, batch 64, 150 epochs,
the lr divided by 10 after epochs 50 and 100, last-epoch results (never selected on the test set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import ComputeHparams, DataHparams, TrainHparams
from ..models.checkpoint import Checkpoint, load_checkpoint
from ..models.spec import ArchSpec
from ..sparsity.mask import Mask
from ..train.engine import TrainResult
from ..train.run import RunFiles, train_and_save
from ..train.setup import RunSetup

__all__ = ["head_name", "downstream_model", "run_full_finetuning"]


def head_name(model: nn.Module) -> str:
    """The module name of the classifier: the last Linear layer."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no Linear classifier to replace")
    return names[-1]


def downstream_model(
    upstream: str | Path, num_classes: int, seed: int, *, loaded: Checkpoint | None = None
) -> tuple[nn.Module, Mask | None, ArchSpec, dict[str, Any]]:
    """The upstream network with a new dense head of ``num_classes`` outputs; returns the model,
    the backbone mask (the head's entries dropped), the new spec and the upstream's sparsity.
    ``loaded``: the upstream checkpoint when the caller has loaded it (it is not read again)."""
    ckpt = loaded if loaded is not None else load_checkpoint(upstream)
    spec = ArchSpec(
        ckpt.spec.arch, num_classes, ckpt.spec.input_shape, dict(ckpt.spec.kwargs), ckpt.spec.widths, ckpt.spec.tied
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build()  # the new head keeps its default init
    head = head_name(model)
    order = [n for n, _ in model.named_modules()]
    ours, theirs = model.state_dict(), ckpt.model.state_dict()
    if set(ours) != set(theirs):
        raise ValueError(
            f"{upstream}: the upstream's tensors differ from its architecture's: "
            f"missing {sorted(set(ours) - set(theirs))}, unexpected {sorted(set(theirs) - set(ours))}"
        )
    # tensors whose shape follows the number of classes: the head, and what comes after it (a
    # BatchNorm on the logits, as in DSR's LeNet); they keep their fresh initialisation
    new = {k for k in ours if ours[k].shape != theirs[k].shape}
    owners = {k.rsplit(".", 1)[0] for k in new}
    early = [m for m in owners if order.index(m) < order.index(head)]
    if early:
        raise ValueError(f"{upstream}: layers before the classifier depend on the number of classes: {sorted(early)}")
    new |= {k for k in ours if k.rsplit(".", 1)[0] in owners | {head}}
    model.load_state_dict({k: v for k, v in theirs.items() if k not in new}, strict=False)
    mask = None
    if ckpt.mask is not None:
        kept = {n: m for n, m in ckpt.mask.items() if n not in new}
        mask = Mask(kept) if kept else None
    report = {
        "upstream": str(upstream),
        "upstream_sparsity": ckpt.mask.sparsity if ckpt.mask is not None else 0.0,
        "backbone_sparsity": mask.sparsity if mask is not None else 0.0,
        "head": head,
        "new_tensors": sorted(new),
    }
    return model, mask, spec, report


def run_full_finetuning(
    files: RunFiles,
    *,
    upstream: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """Finetune every tensor on the downstream data with the backbone masks enforced."""
    run = RunSetup.for_data(data, seed)
    splits, seeds = run.splits, run.seeds
    loaded = load_checkpoint(upstream)  # verified: its hash is the sidecar's parent hash
    model, mask, spec, report = downstream_model(upstream, splits.info.num_classes, seeds.init, loaded=loaded)
    if tuple(spec.input_shape) != tuple(splits.info.input_shape):
        raise ValueError(
            f"{upstream}: the upstream takes inputs {tuple(spec.input_shape)}, the downstream data "
            f"{tuple(splits.info.input_shape)}; resize the downstream images (image_size)"
        )
    hparams = run.with_spec(spec).hparams("transfer_full", recipe, transfer=report)
    result = train_and_save(
        files,
        run.with_spec(spec),
        model,
        mask,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=False,
        callbacks=(),
        parents=(loaded.as_parent("upstream", upstream),),
    )
    if mask is not None:  # the upstream sparsity must have survived exactly
        final = Mask.from_zeros(result.model, mask.names())
        if final.sparsity + 1e-12 < mask.sparsity:
            raise RuntimeError(f"backbone densified during finetuning: {final.sparsity:.4f} < {mask.sparsity:.4f}")
    return result
