"""Mask updates of the dynamic sparse methods: DSR, SET and DeepR (Mostafa & Wang, ICML 2019, §1.2, §2.1-2.2).

Every function here is pure: it takes the current weights (or their magnitudes), the boolean masks
of the sparse tensors (keyed by parameter name) and a seeded ``torch.Generator``, and returns new
masks. Applying them to a model and the training-loop clock live in :mod:`.callbacks`.

Masks may be coarser than their weights ("granularity", §1.1): one entry per element, per kernel
row or per whole kernel of a conv; :func:`.layers.entry_magnitudes` reduces a weight to its mask's shape
(mean |w| over the slice) and :func:`.layers.expand` maps a mask back onto the weight.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from .layers import Granularity, entry_magnitudes, expand

__all__ = [
    "Granularity",
    "DSRResult",
    "RewireResult",
    "entry_magnitudes",
    "expand",
    "dsr_step",
    "next_threshold",
    "set_step",
    "deepr_step",
    "grow_random",
]


def _flat_true(x: Tensor) -> Tensor:
    return torch.nonzero(x.reshape(-1)).flatten()


def grow_random(mask: Tensor, count: int, forbidden: Tensor, generator: torch.Generator) -> Tensor:
    """Switch on ``count`` entries chosen uniformly among the inactive ones not in ``forbidden``."""
    if count <= 0:
        return mask
    candidates = _flat_true(~mask & ~forbidden)
    if count > candidates.numel():
        raise ValueError(f"cannot grow {count} entries: only {candidates.numel()} inactive positions are allowed")
    pick = candidates[torch.randperm(candidates.numel(), generator=generator)[:count]]
    out = mask.clone().reshape(-1)
    out[pick] = True
    return out.view_as(mask)


# ------------------------------------------------------------------------------------ DSR
@dataclasses.dataclass(frozen=True)
class DSRResult:
    masks: dict[str, Tensor]
    pruned: dict[str, int]  # K_l, per sparse tensor
    grown: dict[str, int]  # G_l
    threshold: float  # H for the next reallocation


def next_threshold(threshold: float, pruned_total: int, target: int, tolerance: float = 0.1) -> float:
    """Halve H when more than (1 + δ)·Np were pruned, double it below (1 − δ)·Np (strict: the
    boundaries keep H)."""
    if pruned_total > (1.0 + tolerance) * target:
        return threshold / 2.0
    if pruned_total < (1.0 - tolerance) * target:
        return threshold * 2.0
    return threshold


def _prune_below(magnitude: Tensor, mask: Tensor, threshold: float) -> Tensor:
    """Active entries with magnitude strictly below the threshold; never all of a layer's active
    entries (the lowest-index candidate is spared then, as in the original)."""
    cut = mask & (magnitude < threshold)
    active = int(mask.sum())
    if active and int(cut.sum()) == active:
        first = _flat_true(cut)[0]
        cut = cut.clone().reshape(-1)
        cut[first] = False
        cut = cut.view_as(mask)
    return cut


# How DSR splits the regrowth: across the tensors by survivors (the paper) or what each lost.
Regrowth = Literal["proportional", "per_layer"]


def _shares(total: int, weights: Mapping[str, int], generator: torch.Generator) -> dict[str, int]:
    """``total`` split in proportion to ``weights``, each share ``total * w / sum(w)`` rounded as the
    original's ``np.round`` (halves to even); the rounding remainder goes to one uniformly random
    entry (clamped at zero)."""
    names = list(weights)
    norm = sum(weights.values())
    if norm <= 0:
        return {n: 0 for n in names}
    shares = {n: round(total * weights[n] / norm) for n in names}  # Python's round: halves to even
    rest = total - sum(shares.values())
    if rest:
        lucky = names[int(torch.randint(len(names), (1,), generator=generator))]
        shares[lucky] = max(0, shares[lucky] + rest)
    return shares


def dsr_step(
    magnitudes: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    threshold: float,
    target: int,
    generator: torch.Generator,
    tolerance: float = 0.1,
    regrowth: Regrowth = "proportional",
) -> DSRResult:
    """One DSR reallocation (Algorithm 1): prune every active entry below the global threshold
    H, regrow as many, at random positions that were not pruned in this step, and adapt H for the
    next step.

    ``regrowth``: ``proportional`` (the paper's runs, the reference's ``--rewire-scaling``) splits
    the regrowth across the sparse tensors in proportion to their survivors; shares that a tensor
    has no room for are split again among the others until all are placed. ``per_layer`` (the
    reference without that flag): each tensor regrows exactly what it lost. Either way the number
    of active entries is conserved exactly (per tensor too with ``per_layer``).
    """
    pruned_pos = {n: _prune_below(magnitudes[n], masks[n], threshold) for n in masks}
    after = {n: masks[n] & ~pruned_pos[n] for n in masks}
    pruned = {n: int(pruned_pos[n].sum()) for n in masks}
    survivors = {n: int(after[n].sum()) for n in masks}
    room = {n: int((~after[n] & ~pruned_pos[n]).sum()) for n in masks}
    to_place = sum(pruned.values())
    if to_place > sum(room.values()):
        raise ValueError(
            f"DSR cannot regrow {to_place} entries: only {sum(room.values())} inactive positions were not just pruned "
            "(the sparse tensors are too dense for this Np)"
        )
    if regrowth == "per_layer":
        short = [n for n in masks if pruned[n] > room[n]]
        if short:
            raise ValueError(
                f"DSR (per-layer regrowth) cannot regrow {short[0]}'s {pruned[short[0]]} entries: only "
                f"{room[short[0]]} of its inactive positions were not just pruned (the tensor is too dense)"
            )
        new = {n: grow_random(after[n], pruned[n], pruned_pos[n], generator) for n in masks}
        return DSRResult(new, pruned, dict(pruned), next_threshold(threshold, to_place, target, tolerance))
    grown = {n: 0 for n in masks}
    while to_place > 0:
        open_layers = {n: survivors[n] for n in masks if room[n] - grown[n] > 0}
        if sum(open_layers.values()) == 0:  # only empty layers have room left: split evenly
            open_layers = {n: 1 for n in masks if room[n] - grown[n] > 0}
        shares = _shares(to_place, open_layers, generator)
        placed = 0
        for n, share in shares.items():
            g = min(share, room[n] - grown[n])
            grown[n] += g
            placed += g
        if placed == 0:  # rounding gave every open layer nothing: place one where there is room
            n = next(iter(open_layers))
            grown[n] += 1
            placed = 1
        to_place -= placed
    new = {n: grow_random(after[n], grown[n], pruned_pos[n], generator) for n in masks}
    return DSRResult(new, pruned, grown, next_threshold(threshold, sum(pruned.values()), target, tolerance))


# ------------------------------------------------------------------------------------ SET and DeepR
@dataclasses.dataclass(frozen=True)
class RewireResult:
    masks: dict[str, Tensor]
    removed: dict[str, int]  # per tensor; as many were regrown in the same tensor


def smallest_active(magnitude: Tensor, mask: Tensor, count: int) -> Tensor:
    """The ``count`` smallest-magnitude active entries (ties: lower flat index first)."""
    idx = _flat_true(mask)
    if count <= 0 or idx.numel() == 0:
        return torch.zeros_like(mask)
    # a stable sort keeps ascending flat indices among equal magnitudes
    order = torch.sort(magnitude.reshape(-1)[idx], stable=True).indices[:count]
    out = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
    out[idx[order]] = True
    return out.view_as(mask)


def set_step(
    magnitudes: Mapping[str, Tensor], masks: Mapping[str, Tensor], fraction: float, generator: torch.Generator
) -> RewireResult:
    """SET as in the DSR code (§2.2): every tensor drops its ``int(fraction·M) + 1`` smallest active
    entries (at least one; never all) and regrows as many at random in the same tensor, not where
    it just pruned."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"SET rewire fraction must be in [0, 1), got {fraction}")
    new, removed = {}, {}
    for n, mask in masks.items():
        active = int(mask.sum())
        count = min(int(fraction * active) + 1, max(active - 1, 0))
        cut = smallest_active(magnitudes[n], mask, count)
        new[n] = grow_random(mask & ~cut, count, cut, generator)
        removed[n] = count
    return RewireResult(new, removed)


def deepr_step(
    weights: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    previous_signs: Mapping[str, Tensor],
    generator: torch.Generator,
) -> tuple[RewireResult, dict[str, Tensor]]:
    """DeepR's rewiring (§2.1): active connections whose sign changed since the previous call
    (a stored sign of 0, e.g. a new connection, never counts) are removed, and as many random
    inactive ones of the same tensor, not just removed, are switched on. Returns the result and
    the signs to store for the next call. Element-wise masks only."""
    new, removed, signs = {}, {}, {}
    for n, mask in masks.items():
        w = weights[n].detach()
        if w.shape != mask.shape:
            raise ValueError(
                f"DeepR needs element-wise masks: {n} has mask {tuple(mask.shape)}, weight {tuple(w.shape)}"
            )
        now = torch.sign(w)
        before = previous_signs.get(n, torch.zeros_like(now)).to(now.device)
        flipped = mask & (before != 0) & (now != before)
        count = int(flipped.sum())
        new[n] = grow_random(mask & ~flipped, count, flipped, generator)
        removed[n] = count
        signs[n] = torch.where(new[n], now, torch.zeros_like(now))
    return RewireResult(new, removed), signs
