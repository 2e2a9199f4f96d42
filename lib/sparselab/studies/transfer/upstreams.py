"""What every upstream costs: parameters (all and alive), FLOPs of one forward pass and ShrinkBench's
theoretical speed-up under its mask (``metrics.complexity``), one row per upstream checkpoint.

Measured on the upstream as it was trained (its own classifier, its input size, batch 1): the
dense FLOPs are those of the same network computed densely, the sparse ones skip every weight its
mask holds at zero. The report job turns the rows into ``table_upstreams`` (:mod:`.report`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ...metrics.complexity import count_flops, flops_sparse, theoretical_speedup
from ...models.checkpoint import load_checkpoint
from ..base.records import records_frame, write_frame
from .common import backbone_sparsity

__all__ = ["UPSTREAM_COLUMNS", "upstream_cost", "write_upstreams"]

UPSTREAM_COLUMNS = (
    "upstream_dataset",
    "model",
    "upstream",
    "sparsity",
    "measured_sparsity",
    "params",
    "params_alive",
    "flops",
    "flops_sparse",
    "theoretical_speedup",
    "input_shape",
    "checkpoint",
)


def upstream_cost(checkpoint: str | Path) -> dict[str, Any]:
    """Parameters, alive parameters (the mask's zeros removed), dense and sparse FLOPs and their
    ratio for one checkpoint; a checkpoint without a mask is dense (speed-up 1)."""
    ckpt = load_checkpoint(checkpoint)
    model, mask, shape = ckpt.model, ckpt.mask, tuple(ckpt.spec.input_shape)
    params = sum(p.numel() for p in model.parameters())
    pruned = sum(int((~mask[n]).sum()) for n in mask) if mask is not None else 0
    dense = count_flops(model, shape)
    sparse = flops_sparse(model, shape, mask)
    return {
        "measured_sparsity": backbone_sparsity(model),
        "params": params,
        "params_alive": params - pruned,
        "flops": dense,
        "flops_sparse": sparse,
        "theoretical_speedup": theoretical_speedup(dense, sparse),
        "input_shape": "x".join(str(d) for d in shape),
        "checkpoint": str(checkpoint),
    }


def write_upstreams(upstreams: Sequence[tuple[Mapping[str, Any], str | Path]], out_csv: str | Path) -> pd.DataFrame:
    """One row per ``[keys, checkpoint]`` (the plan's upstream list), ``UPSTREAM_COLUMNS`` in order."""
    rows = [{**keys, **upstream_cost(path)} for keys, path in upstreams]
    frame = records_frame(rows, columns=UPSTREAM_COLUMNS)
    return write_frame(frame[list(UPSTREAM_COLUMNS)], out_csv)
