"""One registry of dataset sources, and the generic splitting every source shares.

A *source* (``digits``, ``mnist``, ``cifar10``...) turns :class:`DataHparams` into its train split
(with train-time augmentation), the same samples with eval transforms, and its test split.
:func:`build_splits` then carves a seeded validation hold-out and an optional seeded subset out
of the train split, identically for every source.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

from torch.utils.data import Dataset

from ..config import DataHparams
from ..config.bundles import TRANSFER_SOURCES
from .splits import dataset_len, holdout_indices, subset_indices, take


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W) of one transformed sample
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclasses.dataclass
class SourceSplits:
    """What a source builder returns (before hold-out and subsetting)."""

    info: DatasetInfo
    train: Dataset  # train split, train transform (augmentation when enabled)
    train_eval: Dataset  # the same samples in the same order, eval transform
    test: Dataset  # official test split (or digits' seeded stratified one), eval transform


@dataclasses.dataclass
class DatasetSplits:
    """The splits a run uses. ``val`` is None when no hold-out was asked for."""

    info: DatasetInfo
    train: Dataset
    train_eval: Dataset
    val: Dataset | None
    test: Dataset


SourceBuilder = Callable[[DataHparams], SourceSplits]
_SOURCES: dict[str, SourceBuilder] = {}
# Which module registers which source; imported on demand (torchvision is slow to import).
_SOURCE_MODULES = {
    "digits": "digits",
    "mnist": "mnist",
    "cifar10": "cifar",
    "cifar100": "cifar",
    "imagenet": "imagenet",
    "shapes": "procedural",
    "gratings": "procedural",
    "digits_clutter": "heldout",
    "digits_loops": "heldout",
    **{name: "transfer" for name in TRANSFER_SOURCES},
}


def register_source(name: str) -> Callable[[SourceBuilder], SourceBuilder]:
    def deco(fn: SourceBuilder) -> SourceBuilder:
        _SOURCES[name] = fn
        return fn

    return deco


def list_sources() -> list[str]:
    return sorted(_SOURCE_MODULES)


def build_source(hp: DataHparams) -> SourceSplits:
    if hp.source not in _SOURCE_MODULES:
        raise KeyError(f"unknown dataset source {hp.source!r}; known: {', '.join(list_sources())}")
    importlib.import_module(f"{__package__}.sources.{_SOURCE_MODULES[hp.source]}")
    return _SOURCES[hp.source](hp)


def build_splits(hp: DataHparams) -> DatasetSplits:
    """Build a run's splits: seeded validation hold-out, then a seeded training subset."""
    src = build_source(hp)
    n = dataset_len(src.train)
    keep, val_idx = holdout_indices(n, hp.val_fraction, hp.val_seed)
    if hp.subset_fraction < 1.0:
        keep = keep[subset_indices(len(keep), hp.subset_fraction, hp.subset_seed)]
    val = take(src.train_eval, val_idx) if len(val_idx) else None
    whole = len(keep) == n
    train = src.train if whole else take(src.train, keep)
    if src.train_eval is src.train:  # no augmentation: one object, so it is moved to a device once
        train_eval = train
    else:
        train_eval = src.train_eval if whole else take(src.train_eval, keep)
    return DatasetSplits(
        info=src.info,
        train=train,
        train_eval=train_eval,
        val=val,
        test=src.test,
    )
