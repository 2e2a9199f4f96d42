"""MNIST read by torchvision from the uncompressed idx files under ``<root>/MNIST/raw/``.

60,000 train and 10,000 test 28x28 grey digits. No augmentation (the classic LeNet setups train
without it), so ``train`` and ``train_eval`` are one dataset. Optional bilinear resize and grey
replicated to 3 channels let conv nets built for RGB input run on it, as with digits.

``verify_checksums`` has no effect here: torchvision only md5-checks the ``.gz`` downloads, and
reads the uncompressed files after checking that they exist. The start-up root check tests each
idx file's magic number and that its size matches its header, either way.
"""

from __future__ import annotations

import os

import torch
from torchvision.datasets import MNIST
from torchvision.transforms import v2

from ...config import DataHparams
from ...config.entry_names import source_root_key
from ...config.roots import check_dataset_root
from ..registry import DatasetInfo, SourceSplits, register_source

MEAN = 0.1307
STD = 0.3081
NATIVE_SIZE = 28


def mnist_transform(size: int, channels: int) -> v2.Compose:
    """PIL grey image -> normalised float tensor of shape (channels, size, size)."""
    steps: list[v2.Transform] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if size != NATIVE_SIZE:
        steps.append(v2.Resize((size, size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True))
    if channels == 3:
        steps.append(v2.RGB())
    steps += [v2.Normalize((MEAN,) * channels, (STD,) * channels), v2.ToPureTensor()]
    return v2.Compose(steps)


@register_source("mnist")
def build_mnist(hp: DataHparams) -> SourceSplits:
    check_dataset_root(hp.source, hp.root, key=source_root_key(hp.source, hp.root), verify_checksums=hp.verify_checksums)
    assert hp.root is not None  # checked above
    root = os.path.expanduser(hp.root)
    size = hp.image_size or NATIVE_SIZE
    channels = hp.channels or 1
    transform = mnist_transform(size, channels)
    train = MNIST(root, train=True, transform=transform, download=False)
    test = MNIST(root, train=False, transform=transform, download=False)
    info = DatasetInfo(
        name=hp.source,
        num_classes=10,
        input_shape=(channels, size, size),
        mean=(MEAN,) * channels,
        std=(STD,) * channels,
    )
    return SourceSplits(info=info, train=train, train_eval=train, test=test)
