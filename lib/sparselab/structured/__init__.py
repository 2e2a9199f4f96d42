"""Structured (per-filter) pruning for Lubana & Dick's gradient-flow study.

:mod:`.measures` scores every output filter of every conv (``importance``, ``MEASURES``,
``ImportanceTracker``); :mod:`.dependency` finds what removing a filter touches
(``channel_groups``); :mod:`.removal` removes filters physically or masks them (``prune_filters``,
``narrow``); :mod:`.ranking` ranks filters globally (``select_filters``).

Nothing is imported here: loading a narrowed checkpoint needs :mod:`.dependency` and
:mod:`.removal` only, so a job's code digest does not cover the importance measures unless it
scores filters.
"""
