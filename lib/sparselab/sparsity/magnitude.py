"""Unstructured magnitude pruning, layerwise or global, with exact counts.

Layerwise: every tensor loses ``round(s * numel)`` entries. Global: one magnitude threshold over
all tensors together removes ``round(s * total)`` entries. Entries already masked out by
``current`` stay out (iterative pruning prunes the *remaining* weights). Ties are broken by a
stable sort, so the result is deterministic and the count is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import nn

from .mask import Mask, prunable_parameters

Scope = Literal["layerwise", "global"]


def _scores(model: nn.Module, names: list[str], current: Mask | None) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    scores = {}
    for n in names:
        s = params[n].detach().abs().float().flatten().cpu()
        if current is not None and n in current:
            s = torch.where(current[n].flatten().cpu(), s, torch.full_like(s, -1.0))  # masked: prune first
        scores[n] = s
    return scores


def _keep_largest(scores: torch.Tensor, n_prune: int) -> torch.Tensor:
    keep = torch.ones_like(scores, dtype=torch.bool)
    if n_prune > 0:
        order = torch.argsort(scores, stable=True)  # ascending; ties keep index order
        keep[order[:n_prune]] = False
    return keep


def _check_sparsity(s: float, what: str) -> None:
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"{what}: sparsity {s} must be in [0, 1]")


def magnitude_mask(
    model: nn.Module,
    sparsity: float | Mapping[str, float],
    scope: Scope = "layerwise",
    names: Iterable[str] | None = None,
    current: Mask | None = None,
) -> Mask:
    """The mask keeping the largest |w|, so the selected tensors reach ``sparsity``.

    ``sparsity`` may map parameter names to their own target (layerwise only). The result never
    re-activates an entry that ``current`` masks out; asking for less sparsity than ``current``
    already has is an error rather than a silent no-op.
    """
    names = prunable_parameters(model) if names is None else list(names)
    scores = _scores(model, names, current)
    device = {n: p.device for n, p in model.named_parameters()}
    already = {n: int((~current[n]).sum()) if current is not None and n in current else 0 for n in names}

    if scope == "layerwise":
        out = {}
        for n in names:
            s = sparsity[n] if isinstance(sparsity, Mapping) else sparsity
            _check_sparsity(s, n)
            k = int(round(s * scores[n].numel()))
            if k < already[n]:
                raise ValueError(f"{n}: target sparsity {s} is below the {already[n]} entries already pruned")
            shape = dict(model.named_parameters())[n].shape
            out[n] = _keep_largest(scores[n], k).view(shape).to(device[n])
        return Mask(out)

    if scope == "global":
        if isinstance(sparsity, Mapping):
            raise ValueError("global pruning takes one sparsity, not a per-layer mapping")
        _check_sparsity(sparsity, "global")
        flat = torch.cat([scores[n] for n in names])
        k = int(round(sparsity * flat.numel()))
        if k < sum(already.values()):
            raise ValueError(f"target sparsity {sparsity} is below the entries already pruned")
        keep = _keep_largest(flat, k)
        out, start = {}, 0
        params = dict(model.named_parameters())
        for n in names:
            numel = scores[n].numel()
            out[n] = keep[start : start + numel].view(params[n].shape).to(device[n])
            start += numel
        return Mask(out)

    raise ValueError(f"unknown pruning scope {scope!r}; use 'layerwise' or 'global'")


def remaining_to_total(current_sparsity: float, fraction_of_remaining: float) -> float:
    """Sparsity after pruning ``fraction_of_remaining`` of the weights still active (IMP rounds)."""
    return 1.0 - (1.0 - current_sparsity) * (1.0 - fraction_of_remaining)
