"""Image folders decoded on the training device (``compute.decode: device``).

For machines whose CPUs cannot decode JPEGs as fast as the GPU trains: DataLoader workers only
read each file's bytes; the main process decodes the batch with ``torchvision.io.decode_jpeg`` on
the training device (nvJPEG on CUDA, libjpeg-turbo on the CPU; other formats, e.g. PNG, through
``decode_image`` on the CPU) and runs the split's own torchvision v2 transforms on the decoded
tensors, each sample under the same per-sample seed as the PIL path. The crop boxes and flips are
therefore those of ``compute.decode: workers``; the pixels differ slightly, since decoders and
resamplers differ, and so do results. The same code runs on the CPU (that is how it is tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from .image_files import ImageFiles, image_files
from .seeding import seeded_map
from .workers import resolve_num_workers

if TYPE_CHECKING:  # annotations only: .loaders imports this module (lazily), not the reverse
    from .loaders import SeededBatchSampler

_JPEG_MAGIC = [0xFF, 0xD8, 0xFF]
# torchvision 0.29 deprecates its decoders in favour of TorchCodec; they still work and are what this path uses.
_DEPRECATED = r".*[Dd]ecoding and encoding capabilities of TorchVision are deprecated"


def file_bytes(path: str) -> torch.Tensor:
    """A file's bytes as a 1-D uint8 tensor (what ``decode_jpeg``/``decode_image`` take)."""
    return torch.from_numpy(np.fromfile(path, dtype=np.uint8))


class EncodedFiles(Dataset):
    """``(index, seed)`` -> (file bytes, label, seed): all a worker does on this path."""

    def __init__(self, files: ImageFiles) -> None:
        self.files, self.targets = files.files, files.targets

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        index, seed = key
        return file_bytes(self.files[index]), self.targets[index], seed


def collate_encoded(items: list[tuple[torch.Tensor, int, int]]) -> tuple[list[torch.Tensor], torch.Tensor, list[int]]:
    return [b for b, _, _ in items], torch.tensor([t for _, t, _ in items]), [s for _, _, s in items]


def is_jpeg(data: torch.Tensor) -> bool:
    return data.numel() >= 3 and data[:3].tolist() == _JPEG_MAGIC


def _decode_one(data: torch.Tensor, device: torch.device) -> torch.Tensor:
    return decode_image(data, mode=ImageReadMode.RGB).to(device)


def decode_images(data: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """RGB uint8 (3, H, W) images on ``device``: JPEGs in one ``decode_jpeg`` call, other files one by one on the CPU."""
    out: list[torch.Tensor | None] = [None] * len(data)
    jpegs = [i for i, d in enumerate(data) if is_jpeg(d)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATED, category=DeprecationWarning)
        if jpegs:
            try:
                decoded = decode_jpeg([data[i] for i in jpegs], mode=ImageReadMode.RGB, device=device)
            except (RuntimeError, TypeError):  # a JPEG nvJPEG cannot read, or no list input (torchvision < 0.19)
                decoded = [_decode_one(data[i], device) for i in jpegs]
            for i, image in zip(jpegs, decoded):
                out[i] = image
        for i, d in enumerate(data):
            if out[i] is None:
                out[i] = _decode_one(d, device)
    return out  # type: ignore[return-value]


def augment(images: Sequence[torch.Tensor], seeds: Sequence[int], transform: Callable | None) -> torch.Tensor:
    """The batch of ``transform(image)``, each under its own seed (as :class:`.loaders.PerSampleSeeded`)."""
    if transform is None:
        return torch.stack(list(images))
    return torch.stack(seeded_map(lambda i: transform(images[i]), list(enumerate(seeds))))


class DeviceDecodeLoader:
    """Batches of an image-folder split, read by workers and decoded + augmented on ``device``."""

    def __init__(
        self, files: ImageFiles, sampler: SeededBatchSampler, num_workers: int | str, device: torch.device
    ) -> None:
        self.sampler, self.device, self.transform = sampler, device, files.transform
        self.loader = DataLoader(
            EncodedFiles(files),
            batch_sampler=sampler,
            num_workers=resolve_num_workers(num_workers, sampler.world_size),
            collate_fn=collate_encoded,
            persistent_workers=False,
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for data, targets, seeds in self.loader:
            x = augment(decode_images(data, self.device), seeds, self.transform)
            yield x, targets.to(self.device, non_blocking=True)

    def __len__(self) -> int:
        return len(self.sampler)


def device_decode_loader(
    dataset: Dataset, sampler: SeededBatchSampler, num_workers: int | str, device: torch.device
) -> DeviceDecodeLoader | None:
    """The device-decode loader of ``dataset``, or None when its files cannot be listed (not an image folder)."""
    files = image_files(dataset)
    return None if files is None else DeviceDecodeLoader(files, sampler, num_workers, device)
