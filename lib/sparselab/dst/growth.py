"""Mask updates that grow by a signal: RigL (Evci et al., ICML 2020) and SNFS / sparse momentum
(Dettmers & Zettlemoyer, 2019).

Pure functions of magnitudes (|w| reduced to the mask's shape), growth scores of the same shape
(|dense gradient| for RigL, |dense momentum| for SNFS) and the boolean entry masks keyed by
parameter name; the training-loop side is :mod:`.rigl`.

Both drop the smallest-magnitude active entries and grow the inactive entries (after the drop:
an entry just dropped may be grown again, and then keeps its value) with the largest score. Ties
go to the lower flat index in both (stable sorts), so every update is deterministic.

* **RigL**: per tensor, ``k = int(f · n)`` of its ``n`` active entries are dropped and ``k`` grown
  in the same tensor: per-tensor counts are conserved.
* **SNFS**: per tensor, ``k_l = ceil(f · n_l)`` are dropped (sparse_learning's rounding); the
  ``K = sum k_l`` regrown entries are split across tensors in proportion to each tensor's mean
  |momentum| over its active entries (before the drop), as whole numbers by largest remainder (ties
  to the earlier tensor), each tensor capped at its inactive positions after the drop, and what a
  cap refuses split again among the others the same way. The total is conserved exactly. With no
  momentum anywhere each tensor regrows what it dropped.

The drop fraction decays with a cosine (:func:`cosine_fraction`): ``f(t) = alpha/2 · (1 + cos(pi t / T))``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from .rewiring import smallest_active

__all__ = ["GrowthResult", "cosine_fraction", "drop_and_grow", "rigl_step", "snfs_step", "split_counts"]


def cosine_fraction(step: int, alpha: float, end: int) -> float:
    """``alpha/2 · (1 + cos(pi · step / end))`` for ``0 <= step <= end``, 0 after ``end``."""
    if end <= 0:
        raise ValueError(f"the cosine schedule's end step must be positive, got {end}")
    if step >= end:
        return 0.0
    return alpha / 2.0 * (1.0 + math.cos(math.pi * step / end))


@dataclasses.dataclass(frozen=True)
class GrowthResult:
    masks: dict[str, Tensor]
    dropped: dict[str, Tensor]  # entries dropped in this update (boolean, mask shape)
    grown: dict[str, Tensor]  # entries switched on from the post-drop mask (may include just-dropped ones)


def _order(values: Tensor, descending: bool) -> Tensor:
    return torch.sort(values, stable=True, descending=descending).indices


def drop_and_grow(
    magnitude: Tensor, score: Tensor, mask: Tensor, drop: int, grow: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Drop the ``drop`` smallest-magnitude active entries, then grow the ``grow`` largest-score
    entries among the inactive ones after the drop. Returns (new mask, dropped, grown)."""
    flat = mask.reshape(-1)
    active = torch.nonzero(flat).flatten()
    if not 0 <= drop <= active.numel():
        raise ValueError(f"cannot drop {drop} of {active.numel()} active entries")
    dropped = smallest_active(magnitude, mask, drop).reshape(-1)
    kept = flat & ~dropped
    free = torch.nonzero(~kept).flatten()
    if not 0 <= grow <= free.numel():
        raise ValueError(f"cannot grow {grow} entries: only {free.numel()} are inactive")
    grown = torch.zeros_like(flat)
    grown[free[_order(score.reshape(-1)[free], descending=True)[:grow]]] = True
    return (kept | grown).view_as(mask), dropped.view_as(mask), grown.view_as(mask)


def rigl_step(
    magnitudes: Mapping[str, Tensor], gradients: Mapping[str, Tensor], masks: Mapping[str, Tensor], fraction: float
) -> GrowthResult:
    """One RigL update: per tensor drop ``int(fraction · active)`` by magnitude, grow as many by |gradient|."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"RigL's drop fraction must be in [0, 1], got {fraction}")
    new, dropped, grown = {}, {}, {}
    for n, mask in masks.items():
        k = int(fraction * int(mask.sum()))
        new[n], dropped[n], grown[n] = drop_and_grow(magnitudes[n], gradients[n].abs(), mask, k, k)
    return GrowthResult(new, dropped, grown)


def split_counts(total: int, weights: Mapping[str, float], capacity: Mapping[str, int]) -> dict[str, int]:
    """``total`` whole units split in proportion to ``weights`` (largest remainder, ties to the
    earlier name), no name above its ``capacity``; what caps refuse goes round again among the
    names with room (by weight; evenly once no name with room has weight)."""
    if total > sum(capacity.values()):
        raise ValueError(f"cannot place {total} entries: only {sum(capacity.values())} positions are free")
    alloc = {n: 0 for n in weights}
    remaining = total
    while remaining > 0:
        room = [n for n in weights if capacity[n] - alloc[n] > 0]
        w = {n: float(weights[n]) for n in room if weights[n] > 0}
        if not w:
            w = {n: 1.0 for n in room}
        norm = sum(w.values())
        quota = {n: remaining * v / norm for n, v in w.items()}
        share = {n: int(math.floor(q)) for n, q in quota.items()}
        left = remaining - sum(share.values())
        for n in sorted(w, key=lambda n: -(quota[n] - share[n]))[: max(left, 0)]:  # sorted is stable
            share[n] += 1
        placed = 0
        for n, s in share.items():
            g = min(s, capacity[n] - alloc[n])
            alloc[n] += g
            placed += g
        remaining -= placed
    return alloc


def snfs_step(
    magnitudes: Mapping[str, Tensor], momenta: Mapping[str, Tensor], masks: Mapping[str, Tensor], fraction: float
) -> GrowthResult:
    """One SNFS update (module docstring): drop ``ceil(fraction · active)`` per tensor by magnitude,
    regrow the total across tensors in proportion to their mean |momentum| of active entries, by
    largest |momentum| within each."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"SNFS's prune rate must be in [0, 1), got {fraction}")
    drop, weight, capacity = {}, {}, {}
    for n, mask in masks.items():
        active = int(mask.sum())
        drop[n] = math.ceil(fraction * active)
        weight[n] = float(momenta[n].abs()[mask].mean()) if active else 0.0
        capacity[n] = mask.numel() - (active - drop[n])
    total = sum(drop.values())
    grow = split_counts(total, weight, capacity) if any(w > 0 for w in weight.values()) else drop
    new, dropped, grown = {}, {}, {}
    for n, mask in masks.items():
        new[n], dropped[n], grown[n] = drop_and_grow(magnitudes[n], momenta[n].abs(), mask, drop[n], grow[n])
    return GrowthResult(new, dropped, grown)
