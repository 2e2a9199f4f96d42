"""MNIST read by torchvision from the uncompressed idx files under ``<root>/MNIST/raw/``.

60,000 train and 10,000 test 28x28 grey digits, held as uint8 tensors
(:class:`~sparselab.data.tensor_images.TensorImages`: moved to the training device once, scaled
and normalised there a batch at a time). No augmentation (the classic LeNet setups train without
it), so ``train`` and ``train_eval`` are one dataset. Optional bilinear (antialiased) resize and
grey replicated to 3 channels let conv nets built for RGB input run on it, as with digits; the map
equals torchvision's ``ToDtype(scale=True)``, ``Resize``, ``RGB``, ``Normalize`` on each image.

``verify_checksums`` has no effect here: torchvision only md5-checks the ``.gz`` downloads, and
reads the uncompressed files after checking that they exist. The start-up root check tests each
idx file's magic number and that its size matches its header, either way.
"""

from __future__ import annotations

import os

import torch
from torchvision.datasets import MNIST

from ...config import DataHparams
from ...config.entry_names import source_root_key
from ...config.roots import check_dataset_root
from ..registry import DatasetInfo, SourceSplits, register_source
from ..tensor_images import ImageTransform, TensorImages

MEAN = 0.1307
STD = 0.3081
NATIVE_SIZE = 28


def mnist_images(root: str, train: bool, transform: ImageTransform) -> TensorImages:
    """One split's uint8 (N, 1, 28, 28) images and labels, read by torchvision's ``MNIST``."""
    ds = MNIST(root, train=train, download=False)
    return TensorImages.from_tensors(ds.data.unsqueeze(1), ds.targets.to(torch.int64), transform)


@register_source("mnist")
def build_mnist(hp: DataHparams) -> SourceSplits:
    check_dataset_root(
        hp.source, hp.root, key=source_root_key(hp.source, hp.root), verify_checksums=hp.verify_checksums
    )
    assert hp.root is not None  # checked above
    root = os.path.expanduser(hp.root)
    size = hp.image_size or NATIVE_SIZE
    channels = hp.channels or 1
    transform = ImageTransform(
        mean=(MEAN,) * channels, std=(STD,) * channels, size=size if size != NATIVE_SIZE else None, channels=channels
    )
    train = mnist_images(root, True, transform)
    info = DatasetInfo(
        name=hp.source,
        num_classes=10,
        input_shape=(channels, size, size),
        mean=(MEAN,) * channels,
        std=(STD,) * channels,
    )
    return SourceSplits(info=info, train=train, train_eval=train, test=mnist_images(root, False, transform))
