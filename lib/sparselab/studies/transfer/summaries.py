"""The summaries the transfer study's training jobs end with (upstreams, finetuning, scratch)."""

from __future__ import annotations

from typing import Any

from ...train.engine import TrainResult
from .common import backbone_sparsity


def test_metrics(result: TrainResult) -> dict[str, float]:
    """The test metrics of the weights the run ends with (the engine always evaluates the last epoch)."""
    final = result.final
    return {"top1": final["test_top1"], "mean_per_class": final["test_mean_per_class"], "loss": final["test_loss"]}


def upstream_summary(result: TrainResult, method: str, target: float) -> dict[str, Any]:
    final = result.final
    return {
        "method": method,
        "target_sparsity": target,
        "sparsity": result.mask.sparsity if result.mask is not None else 0.0,
        "weight_sparsity": backbone_sparsity(result.model),
        "test_top1": final.get("test_top1"),
        "epochs": int(final.get("epoch", 0)),
    }
