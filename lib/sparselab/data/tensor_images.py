"""In-memory uint8 image datasets, augmented and normalised a batch at a time by tensor ops.

Why: CIFAR and MNIST fit in memory (150 MB / 47 MB as uint8), so they can live on the training
device and be cropped, flipped, scaled and normalised there, a batch per kernel launch, instead of
a PIL image per sample on the CPU. The same ops run on CPU and CUDA.

Augmentation (pad-``pad`` random crop, then horizontal flip, torchvision's ``RandomCrop(padding=)``
+ ``RandomHorizontalFlip`` with zero fill) is a pure function of ``(aug_seed, epoch, sample)``:
sample ``i``'s crop offsets and flip bit come from ``mix_seed(aug_seed, epoch, i)``
(:func:`~sparselab.data.seeds.mix_seeds`, all samples of an epoch hashed at once on the CPU). So a
sample's augmentation does not depend on its batch, the batch size or the DDP shard, and a resumed
run redraws the same views. A subset (:meth:`TensorImages.take`) numbers its samples ``0..n-1``,
as a ``Subset`` does.

Several views (train with augmentation, train_eval and the validation hold-out without) share
one :class:`ImageStore`, which copies its tensors to a device once.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .seeds import mix_seeds


@dataclasses.dataclass(frozen=True)
class ImageTransform:
    """uint8 (C, H, W) -> float: [crop + flip] -> scale to [0, 1] -> [resize] -> [grey to RGB] -> normalise."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 0  # random crop of the input size from the zero-padded image; 0: no crop
    flip: bool = False  # random horizontal flip (p = 0.5)
    size: int | None = None  # bilinear, antialiased resize to (size, size); None: keep
    channels: int | None = None  # 3: replicate a grey channel; None: keep

    @property
    def augments(self) -> bool:
        return self.pad > 0 or self.flip

    def eval(self) -> ImageTransform:
        """The same map without the random part (the eval transform)."""
        return dataclasses.replace(self, pad=0, flip=False)


class ImageStore:
    """uint8 images (N, C, H, W) and int64 labels, with one copy per device made on first use."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        self.images, self.labels = images.contiguous(), labels.to(torch.int64)
        self._copies: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def on(self, device: torch.device | str | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) on ``device`` (None: where they are), copied there at most once."""
        if device is None or torch.device(device) == self.images.device:
            return self.images, self.labels
        device = torch.device(device)
        if device not in self._copies:
            self._copies[device] = (self.images.to(device), self.labels.to(device))
        return self._copies[device]


def augmentation_params(n: int, aug_seed: int, epoch: int, pad: int, flip: bool) -> torch.Tensor:
    """(n, 3) int64 (row offset, column offset, flip) of samples ``0..n-1`` in ``epoch``.

    Offsets are uniform over ``0..2*pad`` (in padded coordinates), flips Bernoulli(0.5), all drawn
    from independent digits of the sample's 63-bit hash (modulo bias below 1e-16)."""
    h = mix_seeds((aug_seed, epoch), np.arange(n, dtype=np.uint64))
    span = np.uint64(2 * pad + 1)
    dy, rest = h % span, h // span
    dx, rest = rest % span, rest // span
    fl = rest % np.uint64(2) if flip else np.zeros_like(rest)
    return torch.from_numpy(np.stack([dy, dx, fl], axis=1).astype(np.int64))


_CROP_TABLES: dict[tuple[int, int, int, torch.device], torch.Tensor] = {}


def _crop_table(h: int, w: int, pad: int, device: torch.device) -> torch.Tensor:
    """(span * span * 2, H * W) int64: for every (row offset, column offset, flip), the flat index in
    the zero-padded (H + 2 pad, W + 2 pad) image of each output pixel. Built once per shape and device."""
    key = (h, w, pad, device)
    if key not in _CROP_TABLES:
        span, wp = 2 * pad + 1, w + 2 * pad
        dy, dx, flip = torch.meshgrid(torch.arange(span), torch.arange(span), torch.arange(2), indexing="ij")
        ys, xs = torch.arange(h), torch.arange(w)
        rows = dy.reshape(-1, 1, 1) + ys.view(1, h, 1)
        cols = dx.reshape(-1, 1, 1) + torch.where(flip.reshape(-1, 1, 1).bool(), w - 1 - xs, xs)  # (K, 1, W)
        _CROP_TABLES[key] = (rows * wp + cols).reshape(span * span * 2, h * w).to(device)
    return _CROP_TABLES[key]


def crop_flip(images: torch.Tensor, params: torch.Tensor, pad: int) -> torch.Tensor:
    """Crop each (C, H, W) image of ``images`` at its offsets from the zero-padded image, then flip
    it horizontally where its flip bit is set: one pad, one lookup of the output pixels' source
    indices (:func:`_crop_table`) and one gather for the whole batch."""
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    code = (params[:, 0] * (2 * pad + 1) + params[:, 1]) * 2 + params[:, 2]
    flat = _crop_table(h, w, pad, images.device)[code].view(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, -1).gather(2, flat).view(b, c, h, w)


class TensorImages(Dataset):
    """A view of an :class:`ImageStore` (optionally a subset of it) with a transform.

    ``__getitem__`` applies the eval transform (no augmentation) to one sample; the batch loader
    (:class:`~sparselab.data.loaders.TensorBatchLoader`) applies :meth:`transform_batch` with the
    epoch's augmentation."""

    def __init__(self, store: ImageStore, transform: ImageTransform, indices: torch.Tensor | None = None) -> None:
        self.store, self.transform, self.indices = store, transform, indices

    @classmethod
    def from_tensors(cls, images: torch.Tensor, labels: torch.Tensor, transform: ImageTransform) -> TensorImages:
        return cls(ImageStore(images, labels), transform)

    def __len__(self) -> int:
        return len(self.store.labels) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} of {len(self)}")
        j = int(self.indices[i]) if self.indices is not None else i
        x = self.transform_batch(self.store.images[j : j + 1], None)
        return x[0], int(self.store.labels[j])

    def with_transform(self, transform: ImageTransform) -> TensorImages:
        """The same samples (same store) under another transform."""
        return TensorImages(self.store, transform, self.indices)

    def take(self, positions: torch.Tensor) -> TensorImages:
        """The subset at ``positions`` of this view, renumbered ``0..len-1``, sharing the store."""
        positions = torch.as_tensor(positions, dtype=torch.int64)
        return TensorImages(self.store, self.transform, positions if self.indices is None else self.indices[positions])

    def augmentation(self, aug_seed: int, epoch: int) -> torch.Tensor | None:
        """This epoch's per-sample augmentation parameters (CPU), or None when the transform has none."""
        t = self.transform
        return augmentation_params(len(self), aug_seed, epoch, t.pad, t.flip) if t.augments else None

    def transform_batch(
        self, images: torch.Tensor, params: torch.Tensor | None, stats: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalised float32, augmented by ``params`` (rows of
        :meth:`augmentation`) when given. ``stats``: :meth:`stats_on` of the batch's device (made
        here otherwise)."""
        t = self.transform
        if params is not None:
            images = crop_flip(images, params, t.pad)
        x = images.to(torch.float32)  # 0..255; resizing is linear, so it commutes with the scaling
        if t.size is not None and tuple(x.shape[-2:]) != (t.size, t.size):
            x = F.interpolate(x, size=(t.size, t.size), mode="bilinear", align_corners=False, antialias=True)
        if t.channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        scale, shift = stats if stats is not None else self.stats_on(x.device)
        return torch.addcmul(shift, x, scale)  # (x / 255 - mean) / std in one pass

    def stats_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 / (255 std), -mean / std) as float32 (1, C, 1, 1) tensors on ``device``: the
        normalisation of ``ToDtype(scale=True)`` + ``Normalize`` as one multiply-add."""
        mean = torch.tensor(self.transform.mean, dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(self.transform.std, dtype=torch.float64).view(1, -1, 1, 1)
        return (1 / (255 * std)).float().to(device), (-mean / std).float().to(device)
