"""What the dynamic sparse training runs share: the paper's learnable parameter count and the
``summary.json`` every run ends with."""

from __future__ import annotations

from typing import Any

from torch import nn

from ...models.spec import ArchSpec
from ...sparsity.mask import Mask
from ...train.engine import TrainResult
from ..base.summary import final_metrics


def learnable_parameters(model: nn.Module, mask: Mask | None) -> int:
    """The paper's "# parameters": every parameter minus the entries a mask holds inactive (tied
    layers count their bank only, since the bank is the parameter)."""
    total = sum(p.numel() for p in model.parameters())
    return total - (sum(int((~mask[n]).sum()) for n in mask) if mask is not None else 0)


def run_summary(result: TrainResult, model: nn.Module, spec: ArchSpec) -> dict[str, Any]:
    mask = result.mask
    final = result.final
    dense = ArchSpec(spec.arch, spec.num_classes, spec.input_shape, dict(spec.kwargs)).build()
    densities = {n: float(mask[n].float().mean()) for n in mask} if mask is not None else {}
    return {
        **final_metrics(final, ("epoch", "test_top1", "test_loss", "val_top1")),
        "learnable_parameters": learnable_parameters(model, mask),
        "dense_parameters": sum(p.numel() for p in dense.parameters()),
        "sparse_tensor_density": (sum(int(mask[n].sum()) for n in mask) / sum(mask[n].numel() for n in mask))
        if mask
        else 1.0,
        "layer_density": densities,
    }
