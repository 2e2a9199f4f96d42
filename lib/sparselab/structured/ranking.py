"""How many filters each prune+train round removes, and which: one global ranking of raw scores.

Lubana & Dick rank every filter of the network by its importance score, with no per-layer
normalisation, and prune the lowest. Two things are done differently from their code, on purpose
(docs/gradflow.md):

* **Per-round amounts compound exactly.** Round k of n leaves
  ``rows_0 * n(1-p) / (k p + n(1-p))`` ranking rows of the original ``rows_0`` (the compression
  ratio grows linearly to ``1/(1-p)``), rounded once per round from the original count, so the
  last round ends exactly at the target. The original floors a relative fraction every round
  (VGG ends at 74.7% for 75%) and, for ResNets, truncates an integer percentage that compounds to
  82% for a 75% target.
* **The per-layer minimum keeps the most important filters.** The original protected the
  ``int(0.05 n)+1`` highest-*indexed* filters of each VGG/MobileNet layer whatever their scores.

Ties are broken by layer order, then filter index (the original's numpy quicksort left their order
to the implementation). A MobileNet depthwise conv tied to a group counts as a second ranking row
of each of its channels, as in the original.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .dependency import ChannelGroup

__all__ = ["minimum_widths", "ranking_rows", "remaining_rows", "round_fractions_from_thresholds", "select_filters"]


def remaining_rows(rows_0: int, target: float, rounds: int, k: int) -> int:
    """Ranking rows left after round ``k`` of ``rounds`` when ``target`` (a fraction in [0, 1))
    of the original ``rows_0`` is to be pruned by the end."""
    if not 0.0 <= target < 1.0:
        raise ValueError(f"pruning target must be a fraction in [0, 1), got {target}")
    if not 0 <= k <= rounds or rounds < 1:
        raise ValueError(f"round {k} of {rounds}: need 1 <= rounds and 0 <= k <= rounds")
    left = rows_0 * rounds * (1.0 - target) / (k * target + rounds * (1.0 - target))
    return int(math.floor(left + 0.5))


def round_fractions_from_thresholds(thresholds: Sequence[float]) -> list[float]:
    """Cumulative pruned fractions of the original (e.g. 0.1, 0.5, 0.8) as the fraction of what
    is left that each round removes: ``(t_k - t_{k-1}) / (1 - t_{k-1})``."""
    out, prev = [], 0.0
    for t in thresholds:
        if not prev <= t < 1.0:
            raise ValueError(f"thresholds must increase within [0, 1), got {list(thresholds)}")
        out.append((t - prev) / (1.0 - prev))
        prev = t
    return out


def minimum_widths(groups: Sequence[ChannelGroup], fraction: float = 0.05, at_least: int = 1) -> dict[str, int]:
    """``int(fraction * width) + 1`` filters per group of the *unpruned* network (the original's
    5% rule), never below ``at_least``; ``fraction=0`` gives one filter per layer."""
    return {g.producer: max(at_least, int(fraction * g.width) + (1 if fraction > 0 else 0)) for g in groups}


def select_filters(
    scores: Mapping[str, torch.Tensor],
    groups: Sequence[ChannelGroup],
    prune_rows: int,
    minimum: Mapping[str, int] | None = None,
    alive: Mapping[str, torch.Tensor] | None = None,
    protect: Sequence[str] = (),
) -> dict[str, torch.Tensor]:
    """Filters to keep (a boolean vector per group over its current width) after pruning the
    ``prune_rows`` lowest-ranked rows globally.

    ``scores``: per-filter scores keyed by producer conv (depthwise convs' own scores, if
    present, are ignored: their channels follow their group). ``minimum``: filters each group
    keeps at least (its highest-scoring alive ones are exempt from ranking). ``alive``: filters
    still present (masked filters of residual groups are dead already: never counted, never
    re-selected). ``protect``: producers never pruned (e.g. a ResNet stem).
    """
    minimum = minimum or {}
    entries: list[tuple[float, int, int, int]] = []  # (score, group order, filter, rows)
    keep: dict[str, torch.Tensor] = {}
    for order, g in enumerate(groups):
        live = (
            alive[g.producer].clone()
            if alive is not None and g.producer in alive
            else torch.ones(g.width, dtype=torch.bool)
        )
        keep[g.producer] = live
        if g.producer in protect:
            continue
        if g.producer not in scores:
            raise KeyError(f"no importance scores for {g.producer}")
        s = scores[g.producer].detach().float().cpu()
        if s.numel() != g.width:
            raise ValueError(f"{g.producer}: {s.numel()} scores for {g.width} filters")
        if torch.isnan(s[live]).any():
            raise ValueError(f"{g.producer}: importance scores contain NaN")
        idx = torch.nonzero(live).flatten()
        exempt = min(int(minimum.get(g.producer, 1)), idx.numel())
        # the most important filters are exempt; ties: the lower index counts as more important
        order_desc = sorted(idx.tolist(), key=lambda i: (-float(s[i]), i))
        for i in order_desc[exempt:]:
            entries.append((float(s[i]), order, i, g.rows))
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    pruned_rows = 0
    for _score, order, i, rows in entries:
        if pruned_rows >= prune_rows:
            break
        keep[groups[order].producer][i] = False
        pruned_rows += rows
    return keep


def ranking_rows(
    groups: Sequence[ChannelGroup], alive: Mapping[str, torch.Tensor] | None = None, protect: Sequence[str] = ()
) -> int:
    """Rows of the global ranking: alive filters of unprotected groups, times their rows."""
    total = 0
    for g in groups:
        if g.producer in protect:
            continue
        n = int(alive[g.producer].sum()) if alive is not None and g.producer in alive else g.width
        total += n * g.rows
    return total
