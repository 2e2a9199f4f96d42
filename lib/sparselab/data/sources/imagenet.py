"""ImageNet (ILSVRC-2012) read by torchvision's ``ImageFolder`` from ``<root>/{train,val}/<wnid>/``.

The validation images must already be sorted into the same class folders as train (what
``torchvision.datasets.ImageNet`` produces); labels are the sorted wnids' indices in both splits,
which is why the root check insists on identical class folders. Transforms are the standard
ones: ``RandomResizedCrop`` + flip for training, resize-then-centre-crop for evaluation, both
bilinear, drawing randomness from the global torch RNG seeded per sample by the loader.
"""

from __future__ import annotations

import copy
import os

import torch
from torchvision.datasets import ImageFolder
from torchvision.datasets.vision import StandardTransform
from torchvision.transforms import v2

from ...config import DataHparams
from ...config.entry_names import source_root_key
from ...config.roots import DatasetRootError, check_dataset_root
from ..registry import DatasetInfo, SourceSplits, register_source

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP_SIZE = 224
RESIZE_SIZE = 256
_BILINEAR = v2.InterpolationMode.BILINEAR


def imagenet_transforms(size: int, resize: int, augment: bool) -> tuple[v2.Compose, v2.Compose]:
    """(train, eval) transforms: PIL RGB image -> normalised float tensor (3, size, size)."""
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD), v2.ToPureTensor()]
    eval_tf = v2.Compose(
        [v2.ToImage(), v2.Resize(resize, interpolation=_BILINEAR, antialias=True), v2.CenterCrop(size), *tail]
    )
    if not augment:
        return eval_tf, eval_tf
    train_tf = v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(size, interpolation=_BILINEAR, antialias=True),
            v2.RandomHorizontalFlip(),
            *tail,
        ]
    )
    return train_tf, eval_tf


def _image_folder(path: str, transform: v2.Compose, key: str) -> ImageFolder:
    try:
        return ImageFolder(path, transform=transform)
    except FileNotFoundError as e:  # a class folder without images, found only by the full scan
        raise DatasetRootError(f"{key}: {path}: {e}") from e


def _with_transform(dataset: ImageFolder, transform: v2.Compose) -> ImageFolder:
    """The same sample list under another transform, without scanning the tree again."""
    view = copy.copy(dataset)
    view.transform = transform
    view.transforms = StandardTransform(transform, None)
    return view


@register_source("imagenet")
def build_imagenet(hp: DataHparams) -> SourceSplits:
    key = source_root_key(hp.source, hp.root)
    check_dataset_root(hp.source, hp.root, key=key, verify_checksums=hp.verify_checksums)
    assert hp.root is not None  # checked above
    size = hp.image_size or CROP_SIZE
    resize = hp.resize_size or RESIZE_SIZE
    if resize < size:
        raise ValueError(f"datasets.<{hp.source}>: resize_size {resize} must be >= image_size {size} (the centre crop)")
    root = os.path.expanduser(hp.root)
    train_tf, eval_tf = imagenet_transforms(size, resize, hp.augment)
    train = _image_folder(os.path.join(root, "train"), train_tf, key)
    test = _image_folder(os.path.join(root, "val"), eval_tf, key)
    info = DatasetInfo(name=hp.source, num_classes=len(train.classes), input_shape=(3, size, size), mean=MEAN, std=STD)
    return SourceSplits(info=info, train=train, train_eval=_with_transform(train, eval_tf), test=test)
