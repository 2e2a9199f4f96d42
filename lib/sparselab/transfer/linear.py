"""Linear finetuning on cached features (Iofinova et al. 2022, transfer notes §3.1).

A fresh ``nn.Linear`` head is trained on the features of :mod:`.features` with the paper's
protocol: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64, 150 epochs, the lr divided by 10
at the end of epochs 50 and 100 (so 51 / 50 / 49 epochs at each rate, as the original's
``[50, 50, 150]`` trigger gives), last-epoch results. :func:`logistic_regression` is the L-BFGS
alternative (an L2-regularised multinomial logistic regression on the full batch, Kornblith-style).
Both raise :class:`~sparselab.divergence.DivergenceError` when the loss or the head's weights
become NaN or infinite, so no summary of a diverged head is ever written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..divergence import DivergenceError, first_non_finite

__all__ = ["lr_at_epoch", "train_linear_head", "logistic_regression"]


def lr_at_epoch(epoch: int, lr: float = 0.01, decay_after: Sequence[int] = (50, 100), gamma: float = 0.1) -> float:
    """The rate of (0-based) ``epoch``: ``gamma`` applied once for every decay epoch already ended."""
    return lr * gamma ** sum(epoch > e for e in decay_after)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[float, float]:
    pred = logits.argmax(1)
    top1 = float((pred == labels).float().mean())
    per_class = [float((pred[labels == c] == c).float().mean()) for c in range(num_classes) if (labels == c).any()]
    return top1, sum(per_class) / len(per_class)


_LINEAR_FIX = "Lower the linear head's lr, or check the features for NaN or infinite values."


def _check_head(head: nn.Linear, prefix: str) -> None:
    """Raise :class:`DivergenceError` ``"<prefix>: weights became non-finite (...)"`` if they did."""
    found = first_non_finite(head.named_parameters())
    if found is not None:
        name, bad, total = found
        raise DivergenceError(
            f"{prefix}: weights became non-finite ({name}: {bad} of {total} entries NaN or infinite). {_LINEAR_FIX}"
        )


def train_linear_head(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    *,
    epochs: int = 150,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 64,
    decay_after: Sequence[int] = (50, 100),
    seed: int = 0,
    run_name: str = "(unnamed)",
) -> tuple[nn.Linear, list[dict[str, float]]]:
    """A fresh Linear head trained on cached features; per epoch: lr, train loss, test loss, top-1
    and mean per-class accuracy. Shuffling and initialisation come from ``seed``. A NaN or
    infinite loss or weight raises :class:`DivergenceError` naming ``run_name``, epoch and step."""
    x, y = train
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(x.shape[1], num_classes)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    history = []
    for epoch in range(epochs):
        rate = lr_at_epoch(epoch, lr, decay_after)
        for group in opt.param_groups:
            group["lr"] = rate
        order = torch.randperm(x.shape[0], generator=generator)
        total, seen = 0.0, 0
        steps = -(-x.shape[0] // batch_size)
        for step, start in enumerate(range(0, x.shape[0], batch_size)):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())  # read every step anyway (CPU features): checking it is free
            if not math.isfinite(value):
                raise DivergenceError(
                    f"linear head {run_name!r} diverged at epoch {epoch + 1}, step {epoch * steps + step + 1} "
                    f"(step {step + 1} of {steps} in the epoch): the loss became {value}. {_LINEAR_FIX}"
                )
            total += value * idx.numel()
            seen += idx.numel()
        _check_head(head, f"linear head {run_name!r} diverged at epoch {epoch + 1}")
        with torch.no_grad():
            logits = head(test[0])
            top1, per_class = _accuracy(logits, test[1], num_classes)
            history.append(
                {
                    "epoch": epoch + 1,
                    "lr": rate,
                    "train_loss": total / seen,
                    "test_loss": float(F.cross_entropy(logits, test[1])),
                    "test_top1": top1,
                    "test_mean_per_class": per_class,
                }
            )
    return head, history


def logistic_regression(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    *,
    l2: float = 1e-4,
    max_iter: int = 200,
    run_name: str = "(unnamed)",
) -> tuple[nn.Linear, dict[str, float]]:
    """Multinomial logistic regression by L-BFGS on the full batch: minimises the mean cross-entropy
    plus ``l2 / 2 * ||W||^2`` (features standardised with the training statistics). Non-finite
    weights at the end raise :class:`DivergenceError` naming ``run_name``."""
    x, y = train
    mean, std = x.mean(0, keepdim=True), x.std(0, keepdim=True).clamp_min(1e-6)
    xs = (x - mean) / std
    head = nn.Linear(x.shape[1], num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(xs), y) + 0.5 * l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    iterations = opt.state[head.weight].get("n_iter", 0)
    _check_head(head, f"logistic regression {run_name!r} diverged in {iterations} L-BFGS iterations")
    with torch.no_grad():  # fold the standardisation into the head, so it takes raw features
        head.weight.div_(std)
        head.bias.sub_((head.weight * mean).sum(1))
        logits = head(test[0])
    top1, per_class = _accuracy(logits, test[1], num_classes)
    return head, {
        "test_top1": top1,
        "test_mean_per_class": per_class,
        "test_loss": float(F.cross_entropy(logits, test[1])),
    }
