"""Classification metrics over a loader: loss, top-1 and top-5, in one eval-mode pass."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..compute import autocast, to_device


def target_ranks(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target's logit; a sample is top-k correct when its rank is < k.

    Ties are broken by class index, as ``argmax`` and a stable sort do (``topk``'s order of tied
    values is unspecified), and a NaN target logit ranks last, so a diverged model scores 0.
    """
    t = logits.gather(1, targets.unsqueeze(1))
    lower = torch.arange(logits.shape[1], device=logits.device) < targets.unsqueeze(1)
    ranks = ((logits > t) | ((logits == t) & lower)).sum(1)
    return torch.where(t.squeeze(1).isnan(), logits.shape[1], ranks)


def topk_counts(ranks: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many ranks are below each k (k is effectively capped at the number of classes)."""
    return [int((ranks < k).sum()) for k in ks]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    *,
    temperature: float = 1.0,
    amp: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean cross-entropy (of logits / T), top-1, top-5 and mean per-class top-1 accuracy (over the
    classes present; the transfer study's balanced metric); restores train/eval mode."""
    return summarize(*predictions(model, loader, device, temperature=temperature, amp=amp, channels_last=channels_last))


def predictions(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    *,
    temperature: float = 1.0,
    amp: bool = False,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The raw material of :func:`evaluate`: summed loss (float64), the rank of every target among
    the logits, and the targets. Split out so data-parallel evaluation can reduce shards first."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    ranks: list[torch.Tensor] = [torch.zeros(0, dtype=torch.long, device=device)]
    targets: list[torch.Tensor] = [torch.zeros(0, dtype=torch.long, device=device)]
    try:
        for x, y in loader:
            if len(y) == 0:
                continue
            x, y = to_device(x, device, channels_last), y.to(device, non_blocking=True)
            with autocast(device, amp):
                logits = model(x)
            logits = (logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits) / temperature
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            ranks.append(target_ranks(logits, y))
            targets.append(y.long())
    finally:
        model.train(was_training)
    return loss_sum, torch.cat(ranks), torch.cat(targets)


def summarize(loss_sum: torch.Tensor, ranks: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Metrics of :func:`evaluate` from summed loss, target ranks and targets."""
    n = len(targets)
    if n == 0:
        raise ValueError("evaluation loader is empty")
    top1, top5 = topk_counts(ranks)
    return {
        "loss": loss_sum.item() / n,
        "top1": top1 / n,
        "top5": top5 / n,
        "mean_per_class": mean_per_class(ranks, targets),
        "n": n,
    }


def mean_per_class(ranks: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy averaged over the classes present in ``targets`` (each class weighs the same)."""
    correct = (ranks == 0).double()
    classes, inverse = torch.unique(targets, return_inverse=True)
    hits = torch.zeros(len(classes), dtype=torch.float64, device=ranks.device).index_add_(0, inverse, correct)
    counts = torch.bincount(inverse, minlength=len(classes)).double()
    return float((hits / counts).mean())
