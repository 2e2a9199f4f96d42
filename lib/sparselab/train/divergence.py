"""Training that produced a non-finite loss or weight: an error, never a finished-looking result.

The engine keeps every step's loss on the device anyway (for the epoch's mean); at the end of an
epoch, before its metrics, resume state or snapshot are written, :func:`epoch_status` finds the first
non-finite loss among them and whether every weight is still finite, in device tensors (no host
sync per step); under DDP one min-reduction makes every rank agree, and the status is read back
once. :func:`raise_if_diverged` then raises :class:`DivergenceError` naming the run, epoch and step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..divergence import DivergenceError, first_non_finite

__all__ = ["DivergenceError", "epoch_status", "raise_if_diverged"]

_NONE = torch.iinfo(torch.int64).max  # "no non-finite loss in the epoch": the identity of a min-reduction


def epoch_status(losses: torch.Tensor, tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """``[index of the epoch's first non-finite loss (or a huge number), -1 if some weight is
    non-finite else 0]``: an int64 device tensor computed without a host sync, whose elementwise
    minimum over processes is the status of the whole run."""
    index = torch.arange(len(losses), device=losses.device)
    first = torch.where(torch.isfinite(losses), torch.full_like(index, _NONE), index).min()
    checks = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    finite = torch.stack(checks).all() if checks else torch.ones((), dtype=torch.bool, device=losses.device)
    return torch.stack([first, finite.long() - 1])


def raise_if_diverged(
    status: list[int],
    *,
    run: str,
    epoch: int,
    first_step: int,
    steps: int,
    named_tensors: Iterable[tuple[str, torch.Tensor]],
    fix: str,
) -> None:
    """Raise for a read-back :func:`epoch_status` that reports a non-finite loss or weight;
    ``first_step`` is the global number (1-based) of the epoch's first step, ``steps`` the
    epoch's step count, ``fix`` what the user can do."""
    index, weights_ok = status
    if index != _NONE:
        raise DivergenceError(
            f"run {run!r} diverged at epoch {epoch}, step {first_step + index} "
            f"(step {index + 1} of {steps} in the epoch): the training loss became NaN or infinite; "
            f"nothing of this epoch was saved. {fix}"
        )
    if weights_ok < 0:
        found = first_non_finite(named_tensors)
        which = f"{found[0]}: {found[1]} of {found[2]} entries NaN or infinite" if found else "on another process"
        raise DivergenceError(
            f"run {run!r} diverged at epoch {epoch}: weights became non-finite after step "
            f"{first_step + steps - 1} ({which}); nothing of this epoch was saved. {fix}"
        )
