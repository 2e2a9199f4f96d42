"""Datasets: one registry of sources, seeded splits and subsets, and reproducible loaders."""

from .loaders import EpochLoader, make_loader
from .registry import (
    DatasetInfo,
    DatasetSplits,
    SourceSplits,
    build_source,
    build_splits,
    list_sources,
    register_source,
)
from .splits import holdout_indices, subset_indices, take

__all__ = [
    "DatasetInfo",
    "DatasetSplits",
    "EpochLoader",
    "SourceSplits",
    "build_source",
    "build_splits",
    "holdout_indices",
    "list_sources",
    "make_loader",
    "register_source",
    "subset_indices",
    "take",
]
