"""The files, labels and transform behind an image-folder dataset, for loaders that read raw bytes.

The device-decode path (:mod:`.device_decode`) needs what a dataset's ``__getitem__`` would open
and how it would transform it, without the PIL decode. This module knows where the sources' datasets
keep that: ``ImageFolder``/``DatasetFolder`` (ImageNet, Birdsnap), the torchvision classes of the
transfer sets (their ``_image_files``/``_labels``, ``_samples``, ``_images``), the Caltech readers'
``image_path``, and ``Subset``/``ConcatDataset`` of those. Anything else gives ``None``: its
loader keeps decoding in the workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision.datasets import DatasetFolder

from .splits import dataset_len


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """Sample ``i`` is the image in ``files[i]`` with label ``targets[i]``, read through ``transform``."""

    files: list[str]
    targets: list[int]
    transform: Callable | None

    def __len__(self) -> int:
        return len(self.files)


def _listed(dataset: Any) -> tuple[list[str], list[int]] | None:
    """(files, labels) of one torchvision dataset, or None when its layout is not known here."""
    if isinstance(dataset, DatasetFolder):
        return [str(p) for p, _ in dataset.samples], [int(t) for _, t in dataset.samples]
    if hasattr(dataset, "image_path") and hasattr(dataset, "y"):  # the Caltech readers
        return [dataset.image_path(i) for i in range(len(dataset))], [int(t) for t in dataset.y]
    if hasattr(dataset, "_samples"):  # StanfordCars
        return [str(p) for p, _ in dataset._samples], [int(t) for _, t in dataset._samples]
    for files in ("_image_files", "_images"):  # FGVCAircraft, DTD, Flowers102, Food101, SUN397 / OxfordIIITPet
        if hasattr(dataset, files) and hasattr(dataset, "_labels"):
            if getattr(dataset, "_target_types", ["category"]) != ["category"]:
                return None
            return [str(p) for p in getattr(dataset, files)], [int(t) for t in dataset._labels]
    return None


def image_files(dataset: Dataset) -> ImageFiles | None:
    """The files behind ``dataset`` in its sample order, or None if they cannot be listed."""
    if isinstance(dataset, Subset):
        inner = image_files(dataset.dataset)
        if inner is None:
            return None
        idx = list(dataset.indices)
        return ImageFiles([inner.files[i] for i in idx], [inner.targets[i] for i in idx], inner.transform)
    if isinstance(dataset, ConcatDataset):
        parts = [image_files(d) for d in dataset.datasets]
        if not parts or any(p is None for p in parts) or len({id(p.transform) for p in parts if p}) != 1:
            return None
        listed = [p for p in parts if p is not None]
        return ImageFiles(
            [f for p in listed for f in p.files], [t for p in listed for t in p.targets], listed[0].transform
        )
    if getattr(dataset, "target_transform", None) is not None:
        return None
    found = _listed(dataset)
    if found is None or len(found[0]) != dataset_len(dataset):
        return None
    return ImageFiles(found[0], found[1], getattr(dataset, "transform", None))
