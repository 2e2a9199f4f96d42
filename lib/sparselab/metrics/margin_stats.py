"""Per-sample classification margins and the paper's margin quantiles (path-norm study, ICLR 2024).

The margin of ``(x, y)`` is ``f(x)_y - max_{k != y} f(x)_k`` on raw logits: negative means
misclassified and an exact 0 counts as correct, as in the reference code. Torch only (no pandas):
this runs inside training jobs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..compute import autocast, to_device
from .classification import target_ranks

MARGIN_QUANTILE_LEVELS: tuple[str, ...] = ("margin_q0", "margin_q1_3", "margin_q1_2", "margin_q2_3", "margin_q1")
"""Keys of :func:`margin_quantiles`: the p-quantiles for p = e, (2e+1)/3, (e+1)/2, (e+2)/3, 1 (e = train error)."""


@dataclass(frozen=True)
class LogitStats:
    """Per-sample results of one eval pass, in the loader's order (1-D CPU tensors).

    ``correct`` is top-1 with ties broken by class index (as :func:`.classification.target_ranks`),
    so it can differ from ``margins >= 0`` only on samples whose margin is exactly 0.
    """

    margins: torch.Tensor  # float32
    losses: torch.Tensor  # float32, per-sample cross-entropy
    correct: torch.Tensor  # bool

    @property
    def n(self) -> int:
        return self.margins.numel()

    @property
    def top1(self) -> float:
        """Fraction of samples whose target is the (index-tie-broken) argmax."""
        return int(self.correct.sum()) / self.n

    @property
    def mean_loss(self) -> float:
        """Mean cross-entropy, summed in float64 so large datasets do not lose precision."""
        return float(self.losses.double().mean())


def _default_device(model: nn.Module) -> torch.device:
    """The device of the first parameter (or buffer, for parameter-free models); CPU for neither."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if first is None else first.device


def _batch_margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """True-class logit minus the best other logit (true class masked to -inf, then row max)."""
    index = y.unsqueeze(1)
    true = logits.gather(1, index).squeeze(1)
    others = logits.scatter(1, index, float("-inf"))
    return true - others.amax(1)


@torch.no_grad()
def logit_statistics(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str | None = None,
    *,
    amp: bool = False,
    channels_last: bool = False,
) -> LogitStats:
    """Margins, per-sample losses and top-1 correctness from one eval-mode pass over ``loader``.

    Every module's train/eval flag is restored afterwards (not just the root's), so a model
    evaluated mid-training keeps e.g. a frozen-BN submodule in eval mode. Logits are cast to
    float32 before anything is computed, so bf16 autocast only affects the forward pass. Results
    stay on the device until the end: one host sync for the whole pass.
    """
    device = _default_device(model) if device is None else torch.device(device)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    margin_parts: list[torch.Tensor] = []
    loss_parts: list[torch.Tensor] = []
    correct_parts: list[torch.Tensor] = []
    try:
        for x, y in loader:
            x, y = to_device(x, device, channels_last), y.to(device, non_blocking=True)
            with autocast(device, amp):
                logits = model(x)
            logits = logits.float()
            margin_parts.append(_batch_margins(logits, y))
            loss_parts.append(F.cross_entropy(logits, y, reduction="none"))
            correct_parts.append(target_ranks(logits, y) == 0)
    finally:
        for m, training in flags.items():
            m.training = training
    if not margin_parts:
        raise ValueError("margin loader is empty")
    # One device-to-host copy: stack the three per-sample vectors (bool -> 0/1 is exact in float32).
    stacked = torch.stack([torch.cat(margin_parts), torch.cat(loss_parts), torch.cat(correct_parts).float()]).cpu()
    if stacked.shape[1] == 0:
        raise ValueError("margin loader yielded no samples")
    # Clones, so that e.g. ``torch.save(stats.margins)`` does not write the whole 3xN storage.
    return LogitStats(margins=stacked[0].clone(), losses=stacked[1].clone(), correct=stacked[2].bool())


def margins(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Per-sample margins (1-D float32, CPU, loader order); see :func:`logit_statistics`."""
    return logit_statistics(model, loader, device).margins


def _check_margins(margins: torch.Tensor) -> None:
    if margins.dim() != 1:
        raise ValueError(f"margins must be 1-D, got shape {tuple(margins.shape)}")
    if margins.numel() == 0:
        raise ValueError("margins is empty")


def margin_quantiles(margins: torch.Tensor) -> dict[str, float]:
    """The paper's five margin quantiles, keyed by :data:`MARGIN_QUANTILE_LEVELS`.

    As in the reference: sort, N = count, E = number of strictly negative margins, and take the
    sorted values at E, int(2E/3 + (N-1)/3), int(E/2 + (N-1)/2), int(E/3 + 2(N-1)/3), N-1. The
    first is the smallest non-negative margin. Indices use exact integer floors; the reference
    evaluates them in float32, which agrees for every E at the paper's sizes (N <= 1,281,167) but
    not above ~1e7. When every sample is misclassified (E = N) index E does not exist (the
    reference raises); it is clamped to N-1, the largest margin. NaN margins sort last.
    """
    _check_margins(margins)
    n = margins.numel()
    e = int((margins < 0).sum())
    indices = [min(e, n - 1), (2 * e + n - 1) // 3, (e + n - 1) // 2, (e + 2 * (n - 1)) // 3, n - 1]
    values = torch.sort(margins.detach().cpu()).values[indices].tolist()
    return dict(zip(MARGIN_QUANTILE_LEVELS, values))


def top1_from_margins(margins: torch.Tensor) -> float:
    """Fraction of margins >= 0 (the reference's train top-1; a tie with the true class counts as correct)."""
    _check_margins(margins)
    return int((margins >= 0).sum()) / margins.numel()
