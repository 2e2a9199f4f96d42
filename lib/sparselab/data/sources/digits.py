"""scikit-learn's bundled handwritten digits: 1,797 8x8 grey images, 10 classes, no download.

The embedded default dataset. Held in memory as tensors (so the training loop can batch by
indexing), with a seeded stratified train/test split, optional bilinear upscaling and grey
replicated to 3 channels for conv nets. Pixel values 0..16 are scaled to [0, 1] and normalised
with the whole set's mean/std (fixed constants, so every split sees the same map).

The data file ships inside scikit-learn; it is read directly (the same parse as
``sklearn.datasets.load_digits``, which a test checks) because importing scikit-learn costs
about a second in every workflow job.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ...config import DataHparams
from ..registry import DatasetInfo, SourceSplits, register_source

MEAN = 0.3052603
STD = 0.3760492
NATIVE_SIZE = 8


def bundled_digits_file() -> Path | None:
    """scikit-learn's ``digits.csv.gz`` (64 pixel columns + label), located without importing it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.exists() else None


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as float in [0, 1] of shape (N, 1, 8, 8), and int64 labels."""
    path = bundled_digits_file()
    if path is not None:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
        pixels, target = table[:, :-1], table[:, -1]
    else:  # a scikit-learn whose layout changed: take the public (slower to import) API
        from sklearn.datasets import load_digits  # lazy: seconds to import, and only this fallback needs it

        bunch = load_digits()
        pixels, target = bunch.data, bunch.target
    images = torch.as_tensor(pixels, dtype=torch.float32).view(-1, 1, NATIVE_SIZE, NATIVE_SIZE) / 16.0
    return images, torch.as_tensor(target, dtype=torch.int64)


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train, test) indices; each class gives ``round(test_fraction * n_class)`` to test.

    The draw uses an explicit generator seeded by ``seed``, so the split is identical on every run.
    """
    g = torch.Generator()
    g.manual_seed(int(seed))
    test = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        n_test = int(round(test_fraction * len(members)))
        test.append(members[torch.randperm(len(members), generator=g)[:n_test]])
    test_idx = torch.cat(test).sort().values
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[test_idx] = True
    return torch.nonzero(~is_test).flatten(), test_idx


def _transform(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    if size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images - MEAN) / STD
    if channels == 3:
        images = images.expand(-1, 3, -1, -1)
    return images.contiguous()


@register_source("digits")
def build_digits(hp: DataHparams) -> SourceSplits:
    if hp.test_fraction <= 0:
        raise ValueError("datasets.<digits>.test_fraction must be > 0: digits has no official test split")
    size = hp.image_size or NATIVE_SIZE
    channels = hp.channels or 1
    images, labels = load_digits_tensors()
    train_idx, test_idx = stratified_split(labels, hp.test_fraction, hp.split_seed)
    x = _transform(images, size, channels)
    train = TensorDataset(x[train_idx], labels[train_idx])
    info = DatasetInfo(
        name="digits",
        num_classes=10,
        input_shape=(channels, size, size),
        mean=(MEAN,) * channels,
        std=(STD,) * channels,
    )
    # No augmentation: train and train_eval are the same tensors.
    return SourceSplits(info=info, train=train, train_eval=train, test=TensorDataset(x[test_idx], labels[test_idx]))
