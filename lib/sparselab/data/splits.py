"""Seeded, reproducible index splits. Every draw uses an explicit ``torch.Generator``."""

from __future__ import annotations

import math
from collections.abc import Sized

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from .tensor_images import TensorImages


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def dataset_len(dataset: Dataset) -> int:
    """``len(dataset)``, checked: torch's ``Dataset`` declares no ``__len__`` (iterable-style datasets
    have none), while every dataset here is map-style and sized."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"{type(dataset).__name__} has no length (an iterable-style dataset?)")
    return len(dataset)


def holdout_indices(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into (kept, held-out) with ``round(fraction * n)`` held out.

    Both index sets are sorted, so the kept samples keep the source's order.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"hold-out fraction {fraction} must be in [0, 1)")
    n_out = int(round(fraction * n))
    perm = torch.randperm(n, generator=_generator(seed))
    out = perm[:n_out].sort().values
    kept = perm[n_out:].sort().values
    return kept, out


def subset_indices(n: int, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded ``ceil(fraction * n)``-element subset of ``range(n)``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"subset fraction {fraction} must be in (0, 1]")
    k = max(1, math.ceil(fraction * n - 1e-9))
    return torch.randperm(n, generator=_generator(seed))[:k].sort().values


def take(dataset: Dataset, indices: torch.Tensor) -> Dataset:
    """A subset view; in-memory tensor datasets stay tensor datasets so they keep the fast batch
    path (a :class:`TensorDataset` is sliced; :class:`TensorImages` keeps its store and indexes it).
    Either way, sample ``k`` of the subset is ``dataset[indices[k]]``."""
    if isinstance(dataset, TensorImages):
        return dataset.take(indices)
    if isinstance(dataset, TensorDataset):
        return TensorDataset(*(t[indices] for t in dataset.tensors))
    return Subset(dataset, indices.tolist())
