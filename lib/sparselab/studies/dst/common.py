"""What the dynamic sparse training runs share: the paper's learnable parameter count and the
``summary.json`` every run ends with (with its cost: FLOPs and ShrinkBench's theoretical speed-up,
computed here once so that the records and the report never build a model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ...metrics.complexity import count_flops, flops_sparse, theoretical_speedup
from ...models.spec import ArchSpec
from ...sparsity.mask import Mask
from ...train.engine import TrainResult
from ..base.summary import final_metrics


def learnable_parameters(model: nn.Module, mask: Mask | None) -> int:
    """The paper's "# parameters": every parameter minus the entries a mask holds inactive (tied
    layers count their bank only, since the bank is the parameter)."""
    total = sum(p.numel() for p in model.parameters())
    return total - (sum(int((~mask[n]).sum()) for n in mask) if mask is not None else 0)


def cost(model: nn.Module, mask: Mask | None, input_shape: Sequence[int], reference: nn.Module) -> dict[str, Any]:
    """FLOPs of one forward pass at batch 1: ``flops`` as computed (dense kernels), ``flops_sparse``
    with every masked-out Linear/Conv2d weight skipped, and ``theoretical_speedup``: the dense
    ``reference`` network's FLOPs over ``flops_sparse`` (:mod:`sparselab.metrics.complexity`)."""
    sparse = flops_sparse(model, input_shape, mask)
    dense = count_flops(reference, input_shape)
    return {
        "flops": count_flops(model, input_shape),
        "flops_sparse": sparse,
        "flops_dense": dense,
        "theoretical_speedup": theoretical_speedup(dense, sparse),
    }


def run_summary(
    result: TrainResult,
    model: nn.Module,
    spec: ArchSpec,
    reference: ArchSpec | None = None,
    sparse_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The run's summary. ``reference``: the dense network its speed-up is over (default: ``spec``
    without tying); ``sparse_names``: the sparse tensors in model order when some have no mask
    (RigL/SNFS tensors that ERK made dense count at density 1)."""
    mask = result.mask
    final = result.final
    dense = ArchSpec(spec.arch, spec.num_classes, spec.input_shape, dict(spec.kwargs)).build()
    ref = dense if reference is None else reference.build()
    names = list(sparse_names) if sparse_names is not None else (list(mask) if mask is not None else [])
    densities = {n: float(mask[n].float().mean()) if mask is not None and n in mask else 1.0 for n in names}
    params = dict(model.named_parameters())
    active = sum(int(mask[n].sum()) if mask is not None and n in mask else params[n].numel() for n in names)
    return {
        **final_metrics(final, ("epoch", "test_top1", "test_loss", "val_top1", "dropped_total")),
        "learnable_parameters": learnable_parameters(model, mask),
        "dense_parameters": sum(p.numel() for p in dense.parameters()),
        "sparse_tensor_density": active / sum(params[n].numel() for n in names) if names else 1.0,
        "layer_density": densities,
        **cost(model, mask, spec.input_shape, ref),
    }
