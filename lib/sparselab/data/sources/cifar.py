"""CIFAR-10 and CIFAR-100 read by torchvision from the python pickle batches.

50,000 train and 10,000 test 32x32 RGB images. Train augmentation is the standard
``RandomCrop(32, padding=4)`` + horizontal flip, drawn from the global torch RNG (which
:class:`~sparselab.data.loaders.PerSampleSeeded` seeds per sample); eval only normalises.

torchvision md5-checks every batch file, train and test alike, plus the meta file, on every
construction. With ``verify_checksums`` the first construction checks them all once and the
other two use the unchecked classes below; without it no md5 is computed at all. The unchecked
classes exist because the tests write tiny fake files in the real format, which can never match
the official sums; real data should keep the check on.
"""

from __future__ import annotations

import copy
import os

import torch
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.transforms import v2

from ...config import DataHparams
from ...config.roots import DatasetRootError, check_dataset_root, source_root_key
from ..registry import DatasetInfo, SourceSplits, register_source

STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
SIZE = 32


class UncheckedCIFAR10(CIFAR10):
    """CIFAR10 whose md5 entries are None, so torchvision's check_integrity only tests existence."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


class UncheckedCIFAR100(CIFAR100):
    """CIFAR100 whose md5 entries are None (see :class:`UncheckedCIFAR10`)."""

    train_list = [[name, None] for name, _ in CIFAR100.train_list]
    test_list = [[name, None] for name, _ in CIFAR100.test_list]
    meta = {**CIFAR100.meta, "md5": None}


_CLASSES = {"cifar10": (CIFAR10, UncheckedCIFAR10), "cifar100": (CIFAR100, UncheckedCIFAR100)}


def cifar_stats(source: str, normalize: str = "dataset") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std): the dataset's, ImageNet's (the transfer study's linear protocol), or
    0.5/0.5 as in Lubana & Dick's code."""
    if normalize == "imagenet":
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return ((0.5,) * 3, (0.5,) * 3) if normalize == "half" else STATS[source]


def cifar_transforms(source: str, augment: bool, normalize: str = "dataset") -> tuple[v2.Compose, v2.Compose]:
    """(train, eval) transforms: PIL RGB image -> normalised float tensor (3, 32, 32)."""
    mean, std = cifar_stats(source, normalize)
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std), v2.ToPureTensor()]
    eval_tf = v2.Compose([v2.ToImage(), *tail])
    if not augment:
        return eval_tf, eval_tf
    train_tf = v2.Compose([v2.ToImage(), v2.RandomCrop(SIZE, padding=4), v2.RandomHorizontalFlip(), *tail])
    return train_tf, eval_tf


def _load_checked(cls: type[CIFAR10], hp: DataHparams, root: str, transform: v2.Compose) -> CIFAR10:
    """Construct with md5 checks, turning torchvision's bare "not found or corrupted" into advice."""
    try:
        return cls(root, train=True, transform=transform, download=False)
    except RuntimeError as e:
        raise DatasetRootError(
            f"{source_root_key(hp.source)} = {hp.root!r}: the {hp.source} files in "
            f"{os.path.join(root, cls.base_folder)} exist but fail torchvision's md5 check ({e}). "
            "They are not the official release (truncated download, or other files in the real format). "
            "Re-download them, or set verify_checksums: false in that datasets entry if you trust them."
        ) from e


@register_source("cifar10")
@register_source("cifar100")
def build_cifar(hp: DataHparams) -> SourceSplits:
    check_dataset_root(hp.source, hp.root, key=source_root_key(hp.source))
    assert hp.root is not None  # checked above
    root = os.path.expanduser(hp.root)
    checked_cls, unchecked_cls = _CLASSES[hp.source]
    mean, std = cifar_stats(hp.source, hp.normalize)
    if hp.image_size:  # the transfer study's preprocessing: upsampled to image_size
        from .transfer import transfer_transforms

        size = int(hp.image_size)
        resize = hp.resize_size or max(size, round(size * 256 / 224))
        train_tf, eval_tf = transfer_transforms(size, resize, hp.augment, hp.interpolation, mean, std)
    else:
        train_tf, eval_tf = cifar_transforms(hp.source, hp.augment, hp.normalize)
    if hp.verify_checksums:
        # Checks every train and test file and the meta file: the loads below need not repeat it.
        train = _load_checked(checked_cls, hp, root, train_tf)
    else:
        train = unchecked_cls(root, train=True, transform=train_tf, download=False)
    train_eval = copy.copy(train)  # shares the loaded arrays; only the transform differs
    train_eval.transform = eval_tf
    test = unchecked_cls(root, train=False, transform=eval_tf, download=False)
    side = int(hp.image_size) if hp.image_size else SIZE
    info = DatasetInfo(name=hp.source, num_classes=NUM_CLASSES[hp.source], input_shape=(3, side, side), mean=mean, std=std)
    return SourceSplits(info=info, train=train, train_eval=train_eval, test=test)
