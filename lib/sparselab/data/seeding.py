"""Run a function per sample with torch's default CPU generator seeded per sample.

torchvision transforms draw from ``torch.default_generator``; reseeding just that generator costs
about 2 us, where ``torch.manual_seed`` (which also queues a reseed of every CUDA device) and a
``fork_rng`` per sample cost about 100x more: most of a seeded image loader's overhead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch.utils.data import get_worker_info

T = TypeVar("T")


def seeded_map(fn: Callable[[int], T], keys: Sequence[tuple[int, int]]) -> list[T]:
    """``[fn(index) for index, seed in keys]``, each call with the default CPU generator seeded by ``seed``.

    In a DataLoader worker the generator is the worker's own and is simply reseeded; elsewhere its
    state is saved once per call and restored, so the caller's own random draws ignore the data.
    """
    gen = torch.default_generator
    saved = None if get_worker_info() is not None else gen.get_state()
    try:
        out = []
        for index, seed in keys:
            gen.manual_seed(seed)
            out.append(fn(index))
        return out
    finally:
        if saved is not None:
            gen.set_state(saved)
