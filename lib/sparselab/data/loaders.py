"""Batch loaders whose data order and augmentation are pure functions of (seed, epoch, sample).

Why: a training job killed mid-run must replay exactly the same batches after resuming from an
epoch boundary, without saving sampler or worker RNG state. So

* the order of epoch ``e`` is a permutation drawn from a generator seeded by ``(order_seed, e)``;
* image folders: the augmentation of sample ``i`` in epoch ``e`` runs under the global torch RNG
  seeded by ``(aug_seed, e, i)`` (torchvision transforms draw from it), whatever the worker or batch;
* in-memory tensor datasets (digits, procedural, MNIST, CIFAR) skip ``DataLoader``: they are
  moved to the training device once and batched by indexing there, CIFAR's crop + flip drawn from
  ``(aug_seed, e, i)`` and applied to the whole batch (:mod:`.tensor_images`); much faster than
  collating single samples.

``rank``/``world_size`` shard each global batch into contiguous slices (sizes differ by at most
one), so several processes together see exactly the batches one process would.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from .seeding import seeded_map
from .seeds import mix_seed
from .tensor_images import TensorImages
from .workers import resolve_num_workers


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator()
    g.manual_seed(mix_seed(seed, epoch))
    return torch.randperm(n, generator=g)


def _batches(order: torch.Tensor, batch_size: int, drop_last: bool) -> list[torch.Tensor]:
    chunks = list(order.split(batch_size))
    if drop_last and chunks and len(chunks[-1]) < batch_size:
        chunks.pop()
    return chunks


def _shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous slice of a global batch (``torch.tensor_split``: the first
    ``len % world_size`` ranks get one sample more; the engine weighs losses by the global size)."""
    if world_size == 1:
        return batch
    return torch.tensor_split(batch, world_size)[rank]


class EpochLoader(Protocol):
    """What the training engine iterates: call ``set_epoch`` before each epoch."""

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def __len__(self) -> int: ...


_DEVICE_TENSORS: weakref.WeakKeyDictionary[TensorDataset, dict[torch.device, tuple[torch.Tensor, ...]]]
_DEVICE_TENSORS = weakref.WeakKeyDictionary()


def resident_tensors(dataset: TensorDataset, device: torch.device | str | None) -> tuple[torch.Tensor, ...]:
    """A :class:`TensorDataset`'s tensors on ``device`` (None: where they are), copied there once per
    dataset object (train and train_eval are one object where they hold the same samples)."""
    if device is None or all(t.device == torch.device(device) for t in dataset.tensors):
        return dataset.tensors
    copies = _DEVICE_TENSORS.setdefault(dataset, {})
    device = torch.device(device)
    if device not in copies:
        copies[device] = tuple(t.to(device) for t in dataset.tensors)
    return copies[device]


class TensorBatchLoader:
    """Shuffled (or sequential) batches of an in-memory dataset, by indexing on its device.

    A :class:`TensorDataset` (digits, procedural, held-out digits) or :class:`TensorImages` (CIFAR,
    MNIST) is moved to ``device`` once; every batch is an index on that device. For
    :class:`TensorImages`, the epoch's augmentation parameters are hashed on the CPU and moved once
    per epoch, and each batch is cropped, flipped and normalised there. The order is drawn on the
    CPU (:func:`epoch_permutation`), so it is the same on every device.
    """

    def __init__(
        self,
        dataset: TensorDataset | TensorImages,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        aug_seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ) -> None:
        self.images = dataset if isinstance(dataset, TensorImages) else None
        if self.images is not None:
            self.x, self.y = self.images.store.on(device)
            self.stats = self.images.stats_on(self.x.device)
            index = self.images.indices  # a subset's store rows, moved with the store
            self.index = index.to(self.x.device) if index is not None else None
        else:
            self.x, self.y = resident_tensors(dataset, device)  # type: ignore[arg-type]
        self.n = len(dataset)
        self.batch_size, self.shuffle, self.seed, self.aug_seed = batch_size, shuffle, seed, aug_seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        return epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else torch.arange(self.n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.x.device
        order = self._order().to(device)  # one copy per epoch, then every index stays on the device
        if self.images is None:
            for batch in _batches(order, self.batch_size, self.drop_last):
                idx = _shard(batch, self.rank, self.world_size)
                yield self.x[idx], self.y[idx]
            return
        params = self.images.augmentation(self.aug_seed, self.epoch)
        params = params.to(device) if params is not None else None
        for batch in _batches(order, self.batch_size, self.drop_last):
            pos = _shard(batch, self.rank, self.world_size)
            rows = pos if self.index is None else self.index[pos]
            x = self.images.transform_batch(self.x[rows], params[pos] if params is not None else None, self.stats)
            yield x, self.y[rows]

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


class SeededBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields batches of ``(sample index, augmentation seed)`` keys for :class:`PerSampleSeeded`."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool,
        order_seed: int,
        aug_seed: int,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.order_seed, self.aug_seed = order_seed, aug_seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_permutation(self.n, self.order_seed, self.epoch) if self.shuffle else torch.arange(self.n)
        for batch in _batches(order, self.batch_size, self.drop_last):
            yield [
                (i, mix_seed(self.aug_seed, self.epoch, i)) for i in _shard(batch, self.rank, self.world_size).tolist()
            ]

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


class PerSampleSeeded(Dataset):
    """Runs the wrapped dataset's (random) transform with torch's CPU generator seeded per sample.

    Only ``torch.default_generator`` (what torchvision transforms draw from) is reseeded, and in the
    main process it is saved and restored once per batch (:func:`.seeding.seeded_map`): a
    ``fork_rng`` + ``torch.manual_seed`` per sample was most of the loader's overhead.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list:
        """One batch (``DataLoader``'s fetcher calls this when defined)."""
        return seeded_map(lambda index: self.dataset[index], keys)


class SamplerLoader:
    """A ``DataLoader`` over a :class:`SeededBatchSampler`, exposing ``set_epoch``.

    ``num_workers`` may be ``"auto"``: resolved here, from this job's CPUs (:mod:`.workers`).
    """

    def __init__(self, dataset: Dataset, sampler: SeededBatchSampler, num_workers: int | str, pin_memory: bool) -> None:
        self.sampler = sampler
        self.loader = DataLoader(
            PerSampleSeeded(dataset),
            batch_sampler=sampler,
            num_workers=resolve_num_workers(num_workers, sampler.world_size),
            pin_memory=pin_memory,
            persistent_workers=False,
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.sampler)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    order_seed: int = 0,
    aug_seed: int = 0,
    drop_last: bool = False,
    num_workers: int | str = 0,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str | None = None,
    decode_device: torch.device | None = None,
) -> EpochLoader:
    """The loader for one split: in-memory tensors batched on ``device`` (moved there once; None:
    where they are), a seeded ``DataLoader`` of CPU batches otherwise (image folders).

    ``num_workers`` (an int or ``"auto"``) is used only by the ``DataLoader``; with ``decode_device``
    an image-folder split is decoded and augmented on that device (:mod:`.device_decode`).
    """
    if isinstance(dataset, (TensorDataset, TensorImages)):
        return TensorBatchLoader(
            dataset,
            batch_size,
            shuffle=shuffle,
            seed=order_seed,
            aug_seed=aug_seed,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
            device=device,
        )
    sampler = SeededBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        batch_size,
        shuffle=shuffle,
        order_seed=order_seed,
        aug_seed=aug_seed,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )
    if decode_device is not None:
        # lazy: device decoding needs torchvision.io, which jobs on in-memory tensors never pay for
        from .device_decode import device_decode_loader

        loader = device_decode_loader(dataset, sampler, num_workers, decode_device)
        if loader is not None:
            return loader
    return SamplerLoader(dataset, sampler, num_workers, pin_memory)
