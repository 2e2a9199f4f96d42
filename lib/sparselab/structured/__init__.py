"""Structured (per-filter) pruning for Lubana & Dick's gradient-flow study.

:func:`importance` scores every output filter of every conv with one of :data:`MEASURES`
(:mod:`.measures`); :class:`ImportanceTracker` averages the tracked measure over training steps;
:func:`channel_groups` finds what removing a filter touches (:mod:`.dependency`);
:func:`prune_filters` removes filters physically or masks them (:mod:`.removal`);
:func:`select_filters` ranks filters globally (:mod:`.ranking`).
"""

from .dependency import ChannelGroup, channel_groups
from .measures import MEASURES, ImportanceTracker, importance
from .ranking import minimum_widths, ranking_rows, remaining_rows, round_fractions_from_thresholds, select_filters
from .removal import narrow, prune_filters, slice_like_parameters, widths

__all__ = [
    "ChannelGroup", "ImportanceTracker", "MEASURES", "channel_groups", "importance", "minimum_widths", "narrow",
    "prune_filters", "ranking_rows", "remaining_rows", "round_fractions_from_thresholds", "select_filters",
    "slice_like_parameters", "widths",
]  # fmt: skip
