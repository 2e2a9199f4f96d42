"""CIFAR-10 and CIFAR-100 from the python pickle batches, loaded safely, held as uint8 tensors.

50,000 train and 10,000 test 32x32 RGB images. The files are read by torchvision's
``CIFAR10``/``CIFAR100`` classes, except that every batch and meta file goes through the
restricted unpickler of :mod:`sparselab.data.safe_pickle` (dicts, lists, strings, ints and numpy
arrays only), never ``pickle.load``: a tampered file is refused before anything it names runs,
whatever ``verify_checksums`` says. With ``verify_checksums`` the training-split construction first
md5-checks every train and test file and the meta file against the official release (the test
split then need not repeat it); without it no md5 is computed, which is what the tests' tiny fake
files in the real format need.

The splits are :class:`~sparselab.data.tensor_images.TensorImages`: uint8 (N, 3, 32, 32) images
moved to the training device once, where train augmentation (the standard pad-4 random crop +
horizontal flip, drawn from ``(aug_seed, epoch, sample)``) and normalisation run a batch at a time.
:func:`cifar_transforms` is the same map per PIL image (the reference the tests compare the
batched ops with, and ``bench/augment.py``'s baseline; its draws come from the global RNG, so not
the batched path's). With ``image_size`` (the transfer study's upsampled CIFAR) the images go
through the transfer datasets' per-sample PIL transforms instead (torchvision's classes with a
transform, batched by a ``DataLoader``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import check_integrity
from torchvision.datasets.vision import VisionDataset
from torchvision.transforms import v2

from ...config import DataHparams
from ...config.entry_names import source_root_key
from ...config.roots import DatasetRootError, check_dataset_root
from ..registry import DatasetInfo, SourceSplits, register_source
from ..safe_pickle import ForbiddenGlobalError, load_restricted
from ..tensor_images import ImageTransform, TensorImages
from .transfer import transfer_transforms

STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
SIZE = 32
PIXELS = 3 * SIZE * SIZE  # one row of a batch's "data": red, then green, then blue, row-major
REDOWNLOAD = "re-download the dataset (torchvision.datasets.{cls}(root, download=True) elsewhere) and replace {folder}/"


class CifarFileError(ValueError):
    """A CIFAR file that is not what the official release holds (the builder adds the config key)."""


class _RestrictedLoading:
    """Replaces torchvision's loading (plain ``pickle.load``) with :func:`load_restricted` and
    reports which file is wrong; the rest of the dataset is torchvision's."""

    release: str  # the torchvision class that downloads the official files
    base_folder: str
    train_list: list[list[str]]
    test_list: list[list[str]]
    meta: dict[str, str]

    def __init__(
        self,
        root: str,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        verify_md5: bool = False,
    ) -> None:
        VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
        self.train = train
        if verify_md5:
            self._verify_md5()
        data, targets = [], []
        for name, _ in self.train_list if train else self.test_list:
            rows, labels = self._read_batch(self._path(name))
            data.append(rows)
            targets.extend(labels)
        self.data = np.vstack(data).reshape(-1, 3, SIZE, SIZE).transpose((0, 2, 3, 1))  # HWC, as torchvision
        self.targets = targets
        self.classes = self._read_classes(self._path(self.meta["filename"]))
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def _path(self, name: str) -> str:
        return os.path.join(self.root, self.base_folder, name)  # type: ignore[attr-defined]

    def _redownload(self) -> str:
        return REDOWNLOAD.format(cls=self.release, folder=self._path("").rstrip(os.sep))

    def _verify_md5(self) -> None:
        expected = [*self.train_list, *self.test_list, [self.meta["filename"], self.meta["md5"]]]
        for name, md5 in expected:
            if not check_integrity(self._path(name), md5):
                raise CifarFileError(
                    f"{self._path(name)} fails the md5 check against the official release (expected {md5}): a truncated "
                    f"or altered download, or not the official files; {self._redownload()}"
                )

    def _load(self, path: str) -> dict[str, Any]:
        try:
            entry = load_restricted(path)
        except ForbiddenGlobalError as e:
            raise CifarFileError(
                f"{path} is not a CIFAR file: it asks the unpickler for {e.global_name!r}, which CIFAR files never hold "
                f"(refused, nothing ran: the file is tampered with or foreign); {self._redownload()}"
            ) from None
        except Exception as e:  # not a pickle, truncated, ...: pickle raises many types
            raise CifarFileError(
                f"{path} is not a readable CIFAR file ({type(e).__name__}: {e}); {self._redownload()}"
            ) from None
        if not isinstance(entry, dict):
            raise CifarFileError(f"{path} holds a {type(entry).__name__}, not a CIFAR dict; {self._redownload()}")
        return entry

    def _read_batch(self, path: str) -> tuple[np.ndarray, list[int]]:
        entry = self._load(path)
        rows, labels = entry.get("data"), entry.get("labels", entry.get("fine_labels"))
        if not (isinstance(rows, np.ndarray) and rows.dtype == np.uint8 and rows.ndim == 2 and rows.shape[1] == PIXELS):
            got = f"{rows.dtype} array of shape {rows.shape}" if isinstance(rows, np.ndarray) else type(rows).__name__
            raise CifarFileError(f"{path}: 'data' is {got}, not uint8 rows of {PIXELS} pixels; {self._redownload()}")
        if not (isinstance(labels, list) and len(labels) == len(rows) and all(type(y) is int for y in labels)):
            raise CifarFileError(f"{path}: no list of {len(rows)} integer labels; {self._redownload()}")
        return rows, labels

    def _read_classes(self, path: str) -> list[str]:
        classes = self._load(path).get(self.meta["key"])
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
            raise CifarFileError(f"{path}: no list of class names under {self.meta['key']!r}; {self._redownload()}")
        return classes


class RestrictedCIFAR10(_RestrictedLoading, CIFAR10):
    """torchvision's ``CIFAR10`` read through the restricted unpickler, md5 checks on request."""

    release = "CIFAR10"


class RestrictedCIFAR100(_RestrictedLoading, CIFAR100):
    """torchvision's ``CIFAR100`` (fine labels) read through the restricted unpickler, md5 checks on request."""

    release = "CIFAR100"


_CLASSES: dict[str, type[RestrictedCIFAR10] | type[RestrictedCIFAR100]] = {
    "cifar10": RestrictedCIFAR10,
    "cifar100": RestrictedCIFAR100,
}


def cifar_stats(source: str, normalize: str = "dataset") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std): the dataset's, ImageNet's (the transfer study's linear protocol), or
    0.5/0.5 as in Lubana & Dick's code."""
    if normalize == "imagenet":
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return ((0.5,) * 3, (0.5,) * 3) if normalize == "half" else STATS[source]


def cifar_transforms(source: str, augment: bool, normalize: str = "dataset") -> tuple[v2.Compose, v2.Compose]:
    """(train, eval) per-sample transforms: PIL RGB image -> normalised float tensor (3, 32, 32);
    the reference of :func:`cifar_tensor_transforms`."""
    mean, std = cifar_stats(source, normalize)
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std), v2.ToPureTensor()]
    eval_tf = v2.Compose([v2.ToImage(), *tail])
    if not augment:
        return eval_tf, eval_tf
    train_tf = v2.Compose([v2.ToImage(), v2.RandomCrop(SIZE, padding=4), v2.RandomHorizontalFlip(), *tail])
    return train_tf, eval_tf


def cifar_tensor_transforms(
    source: str, augment: bool, normalize: str = "dataset"
) -> tuple[ImageTransform, ImageTransform]:
    """(train, eval) batched transforms of uint8 (3, 32, 32) images: the map of :func:`cifar_transforms`."""
    mean, std = cifar_stats(source, normalize)
    eval_tf = ImageTransform(mean=mean, std=std)
    return (ImageTransform(mean=mean, std=std, pad=4, flip=True) if augment else eval_tf), eval_tf


def _tensor_images(ds: _RestrictedLoading, transform: ImageTransform) -> TensorImages:
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # HWC -> CHW, uint8
    return TensorImages.from_tensors(images, torch.as_tensor(ds.targets, dtype=torch.int64), transform)


@register_source("cifar10")
@register_source("cifar100")
def build_cifar(hp: DataHparams) -> SourceSplits:
    key = source_root_key(hp.source, hp.root)
    check_dataset_root(hp.source, hp.root, key=key, verify_checksums=hp.verify_checksums)
    assert hp.root is not None  # checked above
    root = os.path.expanduser(hp.root)
    cls = _CLASSES[hp.source]
    mean, std = cifar_stats(hp.source, hp.normalize)
    side = int(hp.image_size) if hp.image_size else SIZE
    info = DatasetInfo(
        name=hp.source, num_classes=NUM_CLASSES[hp.source], input_shape=(3, side, side), mean=mean, std=std
    )
    if hp.image_size:  # the transfer study's preprocessing: upsampled to image_size, per PIL image
        size = int(hp.image_size)
        resize = hp.resize_size or max(size, round(size * 256 / 224))
        train_tf, eval_tf = transfer_transforms(size, resize, hp.augment, hp.interpolation, mean, std)
    else:
        train_tf = eval_tf = None
    try:
        # With verify_checksums this checks every train and test file and the meta file: the test split need not.
        train = cls(root, train=True, transform=train_tf, verify_md5=hp.verify_checksums)
        test = cls(root, train=False, transform=eval_tf)
    except CifarFileError as e:
        raise DatasetRootError(f"{key} = {hp.root!r}: {e}") from None
    if not hp.image_size:
        batch_train_tf, batch_eval_tf = cifar_tensor_transforms(hp.source, hp.augment, hp.normalize)
        train_images = _tensor_images(train, batch_train_tf)  # train_eval shares its store (one device copy)
        train_eval = train_images if not hp.augment else train_images.with_transform(batch_eval_tf)
        return SourceSplits(
            info=info, train=train_images, train_eval=train_eval, test=_tensor_images(test, batch_eval_tf)
        )
    train_files_eval = copy.copy(train)  # shares the loaded arrays; only the transform differs
    train_files_eval.transform = eval_tf
    return SourceSplits(info=info, train=train, train_eval=train_files_eval, test=test)
