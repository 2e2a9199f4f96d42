"""Seed mixing: one integer per (seed, epoch, sample), as a scalar and vectorised over samples.

Why: augmentation and data order are pure functions of integers, so a resumed or sharded run
redraws exactly what an uninterrupted one-process run draws. The vectorised form lets the batched
augmentation of :mod:`.tensor_images` hash every sample of an epoch at once, equal to
:func:`mix_seed` elementwise (a test checks it).
"""

from __future__ import annotations

import numpy as np

_MASK64 = 0xFFFFFFFFFFFFFFFF
_MASK63 = (1 << 63) - 1
_GOLDEN, _MUL1, _MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix_state(parts: tuple[int, ...]) -> int:
    """The 64-bit SplitMix64-style state after absorbing ``parts``."""
    h = _GOLDEN
    for p in parts:
        h = (h ^ (int(p) & _MASK64)) * _MUL1 & _MASK64
        h = (h ^ (h >> 27)) * _MUL2 & _MASK64
        h ^= h >> 31
    return h


def mix_seed(*parts: int) -> int:
    """SplitMix64-style combination of integers into one 63-bit seed (cheap, well spread)."""
    return _mix_state(parts) & _MASK63


def mix_seeds(prefix: tuple[int, ...], last: np.ndarray) -> np.ndarray:
    """``mix_seed(*prefix, j)`` for every non-negative integer ``j`` of ``last``, as uint64."""
    with np.errstate(over="ignore"):  # uint64 products wrap around, as the scalar form's masks do
        h = np.uint64(_mix_state(prefix)) ^ np.asarray(last).astype(np.uint64)
        h = h * np.uint64(_MUL1)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(_MUL2)
        h ^= h >> np.uint64(31)
    return h & np.uint64(_MASK63)
