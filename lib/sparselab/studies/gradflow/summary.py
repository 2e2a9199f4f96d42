"""What a gradient-flow run ends with, read from its checkpoint: accuracy, parameters, FLOPs,
compression and theoretical speed-up against the dense architecture (no training code: the
records job uses it too)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from ...metrics.complexity import complexity, theoretical_speedup
from ...models.checkpoint import load_checkpoint
from ...models.spec import ArchSpec


def dense_model(spec: ArchSpec) -> nn.Module:
    """The unpruned architecture of ``spec`` (its widths dropped), freshly initialised."""
    return ArchSpec(spec.arch, spec.num_classes, spec.input_shape, dict(spec.kwargs)).build()


def dense_complexity(spec: ArchSpec) -> dict[str, int]:
    """Parameters and FLOPs of the unpruned architecture (the compression baseline)."""
    return complexity(dense_model(spec), spec.input_shape).to_dict()


def summarize(checkpoint: str | Path, history_final: dict[str, Any] | None = None) -> dict[str, Any]:
    """Accuracy, parameters, FLOPs, compression and theoretical speed-up (dense FLOPs / alive
    FLOPs) of a (pruned) checkpoint against its dense architecture; compression and FLOP
    reduction count masked filters as removed."""
    ckpt = load_checkpoint(checkpoint)
    cost = complexity(ckpt.model, ckpt.spec.input_shape, ckpt.mask)
    dense = dense_complexity(ckpt.spec)
    metrics = dict(history_final if history_final is not None else ckpt.meta.get("metrics", {}))
    return {
        **{k: metrics.get(k) for k in ("epoch", "test_top1", "test_loss", "val_top1", "train_top1") if k in metrics},
        **cost.to_dict(),
        "dense_params": dense["params"],
        "dense_flops": dense["flops"],
        "compression": cost.compression(dense["params"]),
        "flops_reduction": dense["flops"] / cost.flops_alive if cost.flops_alive else math.inf,
        "theoretical_speedup": theoretical_speedup(dense["flops"], cost.flops_alive) if cost.flops_alive else math.inf,
        "widths": ckpt.spec.widths or {},
    }
