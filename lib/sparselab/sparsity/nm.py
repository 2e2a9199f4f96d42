"""N:M semi-structured sparsity by magnitude (2:4 by default): in every group of M consecutive
weights along a layer's input dimension, the N largest |w| stay.

Groups follow the layout the sparse tensor cores read (and NVIDIA's ASP, ``apex.contrib.sparsity``):

- Linear ``(out, in)``: M consecutive entries of each row (``in_features`` must be a multiple of M);
- Conv2d ``(out, C_in, kh, kw)``: M consecutive input channels at each filter and kernel position,
  i.e. groups along the reduction dimension of the channels-last implicit GEMM, ``kh*kw*C_in`` with
  ``C_in`` fastest (ASP's ``permute(2, 3, 0, 1)``); ``C_in`` (per conv group) must be a multiple of M.

Ties are broken by index (the earlier entry of a group stays), so the mask is deterministic.
A layer whose input size is not a multiple of M is refused with an error naming the parameter;
:func:`nm_eligible_parameters` lists the layers that can be N:M (a network's first convolution,
with 1 or 3 input channels, usually cannot).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .mask import Mask, prunable_parameters

__all__ = ["is_nm", "nm_eligible_parameters", "nm_mask", "nm_mask_tensor"]


def _check_nm(n: int, m: int) -> None:
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= n <= m):
        raise ValueError(f"N:M sparsity needs integers 1 <= N <= M, got N={n!r}, M={m!r}")


def _input_size(weight: torch.Tensor, name: str) -> int:
    """The size along which groups run: ``in_features`` (Linear) or input channels (Conv2d)."""
    if weight.dim() in (2, 4):
        return int(weight.shape[1])
    raise ValueError(f"{name}: N:M sparsity applies to Linear (2-d) and Conv2d (4-d) weights, not {weight.dim()}-d")


def _to_groups(t: torch.Tensor, m: int) -> torch.Tensor:
    """``t`` as rows of M consecutive entries along the input dimension (a copy for convolutions)."""
    if t.dim() == 4:
        t = t.permute(0, 2, 3, 1)  # (out, kh, kw, C_in): input channels fastest
    return t.reshape(-1, m)


def _from_groups(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if len(shape) == 4:
        out, c_in, kh, kw = shape
        return g.reshape(out, kh, kw, c_in).permute(0, 3, 1, 2).contiguous()
    return g.reshape(shape)


def _check_divisible(weight: torch.Tensor, m: int, name: str) -> None:
    size = _input_size(weight, name)
    if size % m:
        what = "in_features" if weight.dim() == 2 else "input channels (per conv group)"
        raise ValueError(
            f"{name}: {what} = {size} is not a multiple of M={m}, so it cannot be N:M sparse; "
            "leave this layer out (nm_eligible_parameters lists those that can be)"
        )


def nm_mask_tensor(weight: torch.Tensor, n: int = 2, m: int = 4, name: str = "weight") -> torch.Tensor:
    """Boolean mask (True = kept) of ``weight``'s N largest |w| in each group of M (ties: lower index)."""
    _check_nm(n, m)
    _check_divisible(weight, m, name)
    groups = _to_groups(weight.detach().abs().float(), m)
    order = torch.argsort(groups, dim=1, descending=True, stable=True)  # equal |w|: index order
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, order[:, :n], True)
    return _from_groups(keep, weight.shape)


def nm_eligible_parameters(model: nn.Module, m: int = 4, names: Iterable[str] | None = None) -> list[str]:
    """The prunable weights (or those of ``names``) whose input size is a multiple of M, in model order."""
    params = dict(model.named_parameters())
    names = prunable_parameters(model) if names is None else list(names)
    return [n for n in names if _input_size(params[n], n) % m == 0]


def nm_mask(model: nn.Module, n: int = 2, m: int = 4, names: Iterable[str] | None = None) -> Mask:
    """The N:M magnitude mask of the prunable weights (or of ``names``), on each weight's device.

    Every listed layer must fit: a layer whose input size is not a multiple of M raises
    (choose the names with :func:`nm_eligible_parameters`).
    """
    params = dict(model.named_parameters())
    names = prunable_parameters(model) if names is None else list(names)
    return Mask({k: nm_mask_tensor(params[k], n, m, name=k) for k in names})


def is_nm(tensor: torch.Tensor, n: int, m: int) -> bool:
    """Whether every group of M along the input dimension holds at most N non-zeros (True entries of
    a boolean mask, non-zero weights otherwise). A size that is not a multiple of M is never N:M."""
    _check_nm(n, m)
    if tensor.dim() not in (2, 4) or tensor.shape[1] % m:
        return False
    nonzero = _to_groups(tensor.detach() != 0, m)
    return bool((nonzero.sum(dim=1) <= n).all())
