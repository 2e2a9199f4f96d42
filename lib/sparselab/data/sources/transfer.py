"""The downstream datasets of the sparse-transfer study (Iofinova et al., CVPR 2022), with its splits.

Ten sources (CIFAR-10/100 live in :mod:`.cifar`), each read from its real on-disk layout, never
downloaded (see :mod:`sparselab.config.roots` for the layouts):

========== ====================================== =============================================
source     reader                                 train / test (the paper's split)
========== ====================================== =============================================
aircraft   ``FGVCAircraft``, variant level        official ``trainval`` / ``test``
birdsnap   ``ImageFolder`` (Salman et al.'s copy) ``train/`` / ``test/``
caltech101 ``Caltech101`` (RGB-converting)        first 30 images of each class (by file number)
                                                  / the rest; BACKGROUND_Google dropped
caltech256 ``Caltech256`` (RGB-converting)        first 60 of each class / the rest; 257.clutter kept
cars       ``StanfordCars``                       official ``train`` / ``test``
dtd        ``DTD(partition=1)``                   ``train1`` + ``val1`` / ``test1``
flowers    ``Flowers102``                         ``train`` + ``val`` / ``test``
food101    ``Food101``                            official ``train`` / ``test``
pets       ``OxfordIIITPet``                      official ``trainval`` / ``test``
sun397     ``SUN397`` (partition subclass)        official partition 01 (``Training_01.txt`` /
                                                  ``Testing_01.txt``, in file order)
========== ====================================== =============================================

No validation split is held out by the paper; :func:`~sparselab.data.registry.build_splits` can
still carve one out of train with ``val_fraction``.

Preprocessing (the paper's, §2 of the notes): train = ``RandomResizedCrop(224)`` (scale (0.08, 1),
ratio (3/4, 4/3)) + horizontal flip; eval (test, and train without augmentation) = resize the
shorter side to 256, centre crop 224. Interpolation is ``hp.interpolation``: bilinear, or bicubic
for RigL upstreams. Geometric ops run on PIL images, as in the paper's torchvision 0.9 (PIL
resampling is always antialiased); every image is converted to RGB first (Caltech has greyscale
images). Normalisation follows ``hp.normalize``, as the paper's two paths do: ``dataset`` (the
default) uses the per-dataset statistics in :data:`DATASET_STATS` (its full finetuning), ``imagenet``
ImageNet's mean/std (its pre-extracted linear protocol; the transfer study's feature jobs ask for
it). ``image_size`` replaces 224 and
``resize_size`` replaces 256 (default: ``round(image_size * 256 / 224)``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision.datasets import (
    DTD,
    SUN397,
    Caltech101,
    Caltech256,
    FGVCAircraft,
    Flowers102,
    Food101,
    ImageFolder,
    OxfordIIITPet,
    StanfordCars,
)
from torchvision.datasets.folder import default_loader
from torchvision.datasets.vision import StandardTransform, VisionDataset
from torchvision.transforms import v2

from ...config import DataHparams
from ...config.entry_names import source_root_key
from ...config.roots import LAYOUTS, DatasetRootError, _message, check_dataset_root
from ..registry import DatasetInfo, SourceSplits, register_source

MEAN = (0.485, 0.456, 0.406)  # ImageNet
STD = (0.229, 0.224, 0.225)
CROP_SIZE = 224
RESIZE_SIZE = 256
CALTECH101_TRAIN_PER_CLASS = 30
CALTECH256_TRAIN_PER_CLASS = 60
SUN397_PARTITION = "01"

# Class counts of the real datasets (the paper's Table; the fakes in the tests have fewer).
PAPER_NUM_CLASSES = {
    "aircraft": 100,
    "birdsnap": 500,
    "caltech101": 101,
    "caltech256": 257,
    "cars": 196,
    "dtd": 47,
    "flowers": 102,
    "food101": 101,
    "pets": 37,
    "sun397": 397,
}
# Per-dataset (mean, std) of the paper's full-finetuning path (notes §2); not used by default.
DATASET_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "aircraft": ((0.4892, 0.5159, 0.5356), (0.2275, 0.2200, 0.2476)),
    "birdsnap": ((0.4856, 0.4948, 0.4486), (0.2233, 0.2213, 0.2586)),
    "caltech101": ((0.5413, 0.5063, 0.4693), (0.3115, 0.3090, 0.3183)),
    "caltech256": ((0.5438, 0.5141, 0.4821), (0.3077, 0.3044, 0.3163)),
    "cars": ((0.4513, 0.4354, 0.4358), (0.2900, 0.2880, 0.2951)),
    "dtd": ((0.5322, 0.4734, 0.4251), (0.2642, 0.2530, 0.2613)),
    "flowers": ((0.5133, 0.4148, 0.3383), (0.2959, 0.2502, 0.2900)),
    "food101": ((0.5566, 0.4378, 0.3193), (0.2589, 0.2622, 0.2630)),
    "pets": ((0.4807, 0.4432, 0.3949), (0.2598, 0.2537, 0.2597)),
    "sun397": ((0.4772, 0.4566, 0.4168), (0.2556, 0.2520, 0.2720)),
}
_INTERPOLATION = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


class ToRGB:
    """PIL image -> RGB PIL image (greyscale/CMYK/palette images occur in Caltech and others)."""

    def __call__(self, img: Any) -> Any:
        return img.convert("RGB") if isinstance(img, Image.Image) and img.mode != "RGB" else img

    def __repr__(self) -> str:
        return "ToRGB()"


def transfer_stats(source: str, normalize: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of a transfer source: its own (``dataset``) or ImageNet's (``imagenet``)."""
    return (MEAN, STD) if normalize == "imagenet" else DATASET_STATS[source]


def transfer_transforms(
    size: int = CROP_SIZE,
    resize: int = RESIZE_SIZE,
    augment: bool = True,
    interpolation: str = "bilinear",
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
) -> tuple[v2.Compose, v2.Compose]:
    """(train, eval) transforms: PIL image -> normalised float tensor (3, size, size)."""
    interp = _INTERPOLATION[interpolation]
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std), v2.ToPureTensor()]
    eval_tf = v2.Compose([ToRGB(), v2.Resize(resize, interpolation=interp, antialias=True), v2.CenterCrop(size), *tail])
    if not augment:
        return eval_tf, eval_tf
    train_tf = v2.Compose(
        [ToRGB(), v2.RandomResizedCrop(size, interpolation=interp, antialias=True), v2.RandomHorizontalFlip(), *tail]
    )
    return train_tf, eval_tf


def with_transform(dataset: Dataset, transform: Callable) -> Dataset:
    """The same samples in the same order under another transform (Subset/ConcatDataset aware)."""
    if isinstance(dataset, Subset):
        return Subset(with_transform(dataset.dataset, transform), dataset.indices)
    if isinstance(dataset, ConcatDataset):
        return ConcatDataset([with_transform(d, transform) for d in dataset.datasets])
    view = copy.copy(dataset)
    view.transform = transform  # type: ignore[attr-defined]
    view.transforms = StandardTransform(transform, None)  # type: ignore[attr-defined]
    return view


# --- torchvision classes adapted to the paper ---------------------------------------------------------------


class RGBCaltech101(Caltech101):
    """``Caltech101`` (category targets) converting greyscale images to RGB, without importing scipy."""

    def image_path(self, index: int) -> str:
        category = self.categories[self.y[index]]
        return os.path.join(self.root, "101_ObjectCategories", category, f"image_{self.index[index]:04d}.jpg")

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return _rgb_sample(self, self.image_path(index), self.y[index])


def _rgb_sample(dataset: Any, path: str, target: int) -> tuple[Any, Any]:
    """One image read as RGB (Caltech holds greyscale files) and the dataset's transforms."""
    img = Image.open(path).convert("RGB")
    if dataset.transform is not None:
        img = dataset.transform(img)
    if dataset.target_transform is not None:
        target = dataset.target_transform(target)
    return img, target


class RGBCaltech256(Caltech256):
    """``Caltech256`` converting greyscale images to RGB."""

    def image_path(self, index: int) -> str:
        category = self.categories[self.y[index]]
        name = f"{self.y[index] + 1:03d}_{self.index[index]:04d}.jpg"
        return os.path.join(self.root, "256_ObjectCategories", category, name)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return _rgb_sample(self, self.image_path(index), self.y[index])


class UncheckedFlowers102(Flowers102):
    """``Flowers102`` whose ``.mat`` files are only required to exist (torchvision md5s both)."""

    def _check_integrity(self) -> bool:
        return self._images_folder.is_dir() and all(
            (self._base_folder / self._file_dict[k][0]).is_file() for k in ("label", "setid")
        )


class SUN397Partition(SUN397):
    """``SUN397`` restricted to one official partition file, in that file's order.

    torchvision's ``SUN397`` has no split: it returns every ``sun_*.jpg`` found by ``rglob`` (in
    filesystem order). This subclass keeps its class list (``ClassName.txt``), labels and
    ``__getitem__`` but takes the image list from ``<root>/SUN397/Partitions/<file>`` (lines like
    ``/a/abbey/sun_aaalbzqrimafwbiv.jpg``), so no tree walk is needed and the order is fixed.
    """

    def __init__(self, root: str, partition_file: str, transform: Callable | None = None) -> None:
        VisionDataset.__init__(self, root, transform=transform)
        self._data_dir = Path(self.root) / "SUN397"
        with open(self._data_dir / "ClassName.txt") as f:
            self.classes = [c[3:].strip() for c in f if c.strip()]
        self.class_to_idx = dict(zip(self.classes, range(len(self.classes))))
        self._image_files = []
        self._labels = []
        with open(self._data_dir / "Partitions" / partition_file) as f:
            for line in f:
                rel = line.strip().lstrip("/")
                if not rel:
                    continue
                parts = Path(rel).parts
                name = "/".join(parts[1:-1])
                if name not in self.class_to_idx:
                    raise ValueError(f"{partition_file}: {line.strip()!r} names class {name!r}, not in ClassName.txt")
                self._image_files.append(self._data_dir.joinpath(*parts))
                self._labels.append(self.class_to_idx[name])
        self.loader = default_loader


# --- builders -------------------------------------------------------------------------------------------------


def first_per_class(numbers: list[int], n: int) -> tuple[list[int], list[int]]:
    """(train, test) positions: a sample is train iff its per-class file number is <= ``n``.

    ``numbers`` are torchvision Caltech's ``index`` (1..count within each class), so this is the
    paper's "first n images of each class, ordered by file number; the rest is test".
    """
    train = [i for i, k in enumerate(numbers) if k <= n]
    test = [i for i, k in enumerate(numbers) if k > n]
    return train, test


def _split_positions(ds: Any, n: int) -> tuple[list[int], list[int]]:
    return first_per_class(list(ds.index), n)


def _same_classes(a: Any, b: Any, what: str) -> None:
    if list(a.classes) != list(b.classes):
        raise ValueError(f"{what}: the splits name different classes ({len(a.classes)} vs {len(b.classes)})")


# Each returns (train with train_tf, test with eval_tf, number of classes).
_Reader = Callable[[str, Callable, Callable, DataHparams], tuple[Dataset, Dataset, int]]


def _aircraft(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
    train = FGVCAircraft(root, split="trainval", annotation_level="variant", transform=train_tf, download=False)
    test = FGVCAircraft(root, split="test", annotation_level="variant", transform=eval_tf, download=False)
    return train, test, len(train.classes)


def _birdsnap(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
    train = ImageFolder(os.path.join(root, "train"), transform=train_tf)
    test = ImageFolder(os.path.join(root, "test"), transform=eval_tf)
    _same_classes(train, test, "train/ and test/")
    return train, test, len(train.classes)


def _caltech(cls: type, n: int) -> _Reader:
    def read(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
        full = cls(root, transform=train_tf, download=False)
        train_idx, test_idx = _split_positions(full, n)
        return Subset(full, train_idx), Subset(with_transform(full, eval_tf), test_idx), len(full.categories)

    return read


def _cars(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
    train = StanfordCars(root, split="train", transform=train_tf, download=False)
    test = StanfordCars(root, split="test", transform=eval_tf, download=False)
    return train, test, len(train.classes)


def _dtd(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
    parts = [DTD(root, split=s, partition=1, transform=train_tf, download=False) for s in ("train", "val")]
    test = DTD(root, split="test", partition=1, transform=eval_tf, download=False)
    # torchvision labels each split by the sorted class names found in that split's file.
    _same_classes(parts[0], parts[1], "labels/train1.txt and labels/val1.txt")
    _same_classes(parts[0], test, "labels/train1.txt and labels/test1.txt")
    return ConcatDataset(parts), test, len(test.classes)


def _flowers(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
    cls = Flowers102 if hp.verify_checksums else UncheckedFlowers102
    parts = [cls(root, split=s, transform=train_tf, download=False) for s in ("train", "val")]
    test = cls(root, split="test", transform=eval_tf, download=False)
    return ConcatDataset(parts), test, len(Flowers102.classes)


def _food101(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
    train = Food101(root, split="train", transform=train_tf, download=False)
    test = Food101(root, split="test", transform=eval_tf, download=False)
    _same_classes(train, test, "meta/train.json and meta/test.json")
    return train, test, len(train.classes)


def _pets(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
    train = OxfordIIITPet(root, split="trainval", target_types="category", transform=train_tf, download=False)
    test = OxfordIIITPet(root, split="test", target_types="category", transform=eval_tf, download=False)
    return train, test, max(len(train.classes), len(test.classes))


def _sun397(root: str, train_tf: Callable, eval_tf: Callable, hp: DataHparams) -> tuple[Dataset, Dataset, int]:
    train = SUN397Partition(root, f"Training_{SUN397_PARTITION}.txt", transform=train_tf)
    test = SUN397Partition(root, f"Testing_{SUN397_PARTITION}.txt", transform=eval_tf)
    return train, test, len(train.classes)


_READERS: dict[str, _Reader] = {
    "aircraft": _aircraft,
    "birdsnap": _birdsnap,
    "caltech101": _caltech(RGBCaltech101, CALTECH101_TRAIN_PER_CLASS),
    "caltech256": _caltech(RGBCaltech256, CALTECH256_TRAIN_PER_CLASS),
    "cars": _cars,
    "dtd": _dtd,
    "flowers": _flowers,
    "food101": _food101,
    "pets": _pets,
    "sun397": _sun397,
}
assert set(_READERS) == set(PAPER_NUM_CLASSES) == set(DATASET_STATS) and set(_READERS) <= set(LAYOUTS)


def _image_sizes(hp: DataHparams) -> tuple[int, int]:
    size = hp.image_size or CROP_SIZE
    resize = hp.resize_size or (RESIZE_SIZE if size == CROP_SIZE else max(size, round(size * RESIZE_SIZE / CROP_SIZE)))
    if resize < size:
        raise ValueError(f"datasets.<{hp.source}>: resize_size {resize} must be >= image_size {size} (the centre crop)")
    return size, resize


def build_transfer(hp: DataHparams) -> SourceSplits:
    key = source_root_key(hp.source, hp.root)
    check_dataset_root(
        hp.source, hp.root, key=key, verify_checksums=hp.verify_checksums
    )  # cheap: files, folders, headers
    assert hp.root is not None  # checked above
    size, resize = _image_sizes(hp)
    root = os.path.expanduser(hp.root)
    mean, std = transfer_stats(hp.source, hp.normalize)
    train_tf, eval_tf = transfer_transforms(size, resize, hp.augment, hp.interpolation, mean, std)
    try:
        train, test, num_classes = _READERS[hp.source](root, train_tf, eval_tf, hp)
    except (RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
        # torchvision's "Dataset not found or corrupted", an empty class folder, an annotation line
        # naming an unknown class, a .mat file without the expected fields...
        problem = f"a readable {hp.source} dataset: reading it failed with {type(e).__name__}: {e}"
        if hp.source == "flowers" and hp.verify_checksums:
            problem += (
                " (torchvision md5-checks imagelabels.mat and setid.mat against the official release: if they fail it, "
                "the files are truncated or altered; re-download them)"
            )
        raise DatasetRootError(_message(hp.source, hp.root, key, problem)) from e
    info = DatasetInfo(name=hp.source, num_classes=num_classes, input_shape=(3, size, size), mean=mean, std=std)
    return SourceSplits(info=info, train=train, train_eval=with_transform(train, eval_tf), test=test)


for _name in _READERS:
    register_source(_name)(build_transfer)
