"""The on-disk layout each real dataset source reads, and a cheap check of a configured root.

Why here: the Snakefile checks every configured ``datasets.<name>.root`` at parse time, so a
wrong path fails in a second with one message that says what to fix, instead of deep inside a
training job. So this module imports only the standard library, and every check looks only at a
handful of paths (never walks an ImageNet tree). The layouts are exactly what torchvision's
``MNIST``, ``CIFAR10``/``CIFAR100``, ``ImageFolder`` and the transfer datasets' classes
(``FGVCAircraft``, ``StanfordCars``, ``DTD``, ``Flowers102``, ``Food101``, ``OxfordIIITPet``,
``SUN397``, ``Caltech101``/``Caltech256``) read with ``download=False``.
"""

from __future__ import annotations

import os

from .bundles import HELDOUT_SOURCES, PROCEDURAL_SOURCES

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")  # compared lower-cased: ImageNet ships ".JPEG"

# Files that must exist, relative to the root (MNIST and CIFAR are a fixed set of files); an entry
# ending in "/" is a directory that must exist.
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(
        f"MNIST/raw/{f}"
        for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    ),
    "cifar10": tuple(f"cifar-10-batches-py/{f}" for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
    "cifar100": tuple(f"cifar-100-python/{f}" for f in ("train", "test", "meta")),
    "aircraft": tuple(
        f"fgvc-aircraft-2013b/data/{f}"
        for f in ("variants.txt", "images_variant_trainval.txt", "images_variant_test.txt", "images/")
    ),
    "cars": tuple(
        f"stanford_cars/{f}"
        for f in ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_test_annos_withlabels.mat", "cars_train/", "cars_test/")
    ),
    "dtd": tuple(f"dtd/dtd/{f}" for f in ("labels/train1.txt", "labels/val1.txt", "labels/test1.txt", "images/")),
    "flowers": tuple(f"flowers-102/{f}" for f in ("imagelabels.mat", "setid.mat", "jpg/")),
    "food101": tuple(f"food-101/{f}" for f in ("meta/train.json", "meta/test.json", "images/")),
    "pets": tuple(f"oxford-iiit-pet/{f}" for f in ("annotations/trainval.txt", "annotations/test.txt", "images/")),
    "sun397": tuple(f"SUN397/{f}" for f in ("ClassName.txt", "Partitions/Training_01.txt", "Partitions/Testing_01.txt")),
    "caltech101": ("caltech101/101_ObjectCategories/",),
    "caltech256": ("caltech256/256_ObjectCategories/",),
}

LAYOUTS: dict[str, str] = {
    "mnist": """\
<root>/
  MNIST/
    raw/
      train-images-idx3-ubyte
      train-labels-idx1-ubyte
      t10k-images-idx3-ubyte
      t10k-labels-idx1-ubyte""",
    "cifar10": """\
<root>/
  cifar-10-batches-py/
    data_batch_1 ... data_batch_5
    test_batch
    batches.meta""",
    "cifar100": """\
<root>/
  cifar-100-python/
    train
    test
    meta""",
    "imagenet": """\
<root>/
  train/
    n01440764/*.JPEG   (one folder per class wnid)
    ...
  val/
    n01440764/*.JPEG   (validation images sorted into the same class folders)
    ...""",
    "aircraft": """\
<root>/
  fgvc-aircraft-2013b/
    data/
      variants.txt                   (one variant name per line: the class list)
      images_variant_trainval.txt    (lines "<image id> <variant name>")
      images_variant_test.txt
      images/<image id>.jpg""",
    "birdsnap": """\
<root>/
  train/
    <species>/*.jpg   (one folder per class, 500 classes)
  test/
    <species>/*.jpg   (the same class folders)""",
    "caltech101": """\
<root>/
  caltech101/
    101_ObjectCategories/
      <category>/image_0001.jpg ... image_<n>.jpg   (BACKGROUND_Google is dropped: 101 classes)""",
    "caltech256": """\
<root>/
  caltech256/
    256_ObjectCategories/
      001.ak47/001_0001.jpg ... 001_<n>.jpg   (257 folders, 257.clutter included)""",
    "cars": """\
<root>/
  stanford_cars/
    devkit/cars_meta.mat
    devkit/cars_train_annos.mat
    cars_test_annos_withlabels.mat
    cars_train/*.jpg
    cars_test/*.jpg""",
    "dtd": """\
<root>/
  dtd/
    dtd/
      labels/train1.txt, val1.txt, test1.txt   (lines "<class>/<file>.jpg")
      images/<class>/<file>.jpg""",
    "flowers": """\
<root>/
  flowers-102/
    imagelabels.mat
    setid.mat
    jpg/image_00001.jpg ... image_08189.jpg""",
    "food101": """\
<root>/
  food-101/
    meta/train.json, meta/test.json   ({"<class>": ["<class>/<id>", ...]})
    images/<class>/<id>.jpg""",
    "pets": """\
<root>/
  oxford-iiit-pet/
    annotations/trainval.txt, annotations/test.txt   (lines "<Breed_name>_<n> <class id> <species> <breed id>")
    images/<Breed_name>_<n>.jpg""",
    "sun397": """\
<root>/
  SUN397/
    ClassName.txt                (lines "/a/abbey")
    a/abbey/sun_*.jpg ...
    Partitions/Training_01.txt   (lines "/a/abbey/sun_<id>.jpg", from the official Partitions.zip)
    Partitions/Testing_01.txt""",
}

# How to obtain the layout: torchvision creates each of these (MNIST/CIFAR where there is internet).
_FIXES: dict[str, str] = {
    "mnist": (
        "elsewhere with internet, torchvision.datasets.MNIST(root, download=True) creates <root>/MNIST/raw/ "
        "with the uncompressed files it reads; then copy that root here"
    ),
    "cifar10": (
        "elsewhere with internet, torchvision.datasets.CIFAR10(root, download=True) downloads and extracts "
        "<root>/cifar-10-batches-py/; then copy that root here"
    ),
    "cifar100": (
        "elsewhere with internet, torchvision.datasets.CIFAR100(root, download=True) downloads and extracts "
        "<root>/cifar-100-python/; then copy that root here"
    ),
    "imagenet": (
        "ImageNet cannot be downloaded automatically: with ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and "
        "ILSVRC2012_devkit_t12.tar.gz in <root>, torchvision.datasets.ImageNet(root, split='train') and "
        "split='val' extract train/ and sort val/ into class folders"
    ),
    "aircraft": (
        "elsewhere with internet, torchvision.datasets.FGVCAircraft(root, download=True) downloads and extracts "
        "<root>/fgvc-aircraft-2013b/; then copy that root here"
    ),
    "birdsnap": (
        "torchvision has no Birdsnap and most of its image URLs are dead: use the pre-split ImageFolder copy of "
        "Salman et al. (robust-models-transfer, birdsnap.tar) and point the key at the folder holding train/ and test/"
    ),
    "caltech101": (
        "elsewhere with internet, torchvision.datasets.Caltech101(root, download=True) creates "
        "<root>/caltech101/101_ObjectCategories/; then copy that root here"
    ),
    "caltech256": (
        "elsewhere with internet, torchvision.datasets.Caltech256(root, download=True) creates "
        "<root>/caltech256/256_ObjectCategories/; then copy that root here"
    ),
    "cars": (
        "torchvision.datasets.StanfordCars cannot download any more: obtain cars_train/, cars_test/, the devkit and "
        "cars_test_annos_withlabels.mat (e.g. a Kaggle mirror) and arrange them as shown; reading the .mat files needs scipy"
    ),
    "dtd": (
        "elsewhere with internet, torchvision.datasets.DTD(root, download=True) downloads and extracts "
        "<root>/dtd/dtd/; then copy that root here"
    ),
    "flowers": (
        "elsewhere with internet, torchvision.datasets.Flowers102(root, download=True) creates <root>/flowers-102/; "
        "then copy that root here (reading the .mat files needs scipy)"
    ),
    "food101": (
        "elsewhere with internet, torchvision.datasets.Food101(root, download=True) downloads and extracts "
        "<root>/food-101/; then copy that root here"
    ),
    "pets": (
        "elsewhere with internet, torchvision.datasets.OxfordIIITPet(root, download=True) downloads and extracts "
        "<root>/oxford-iiit-pet/; then copy that root here"
    ),
    "sun397": (
        "elsewhere with internet, torchvision.datasets.SUN397(root, download=True) extracts <root>/SUN397/; then "
        "unzip the official Partitions.zip (Training_01.txt ... Testing_10.txt) into <root>/SUN397/Partitions/"
    ),
}


class DatasetRootError(ValueError):
    """A configured dataset root is missing, unset, or does not hold the layout its source reads."""


def source_root_key(source: str) -> str:
    """The generic config key of a source's root, for callers that do not know the entry name."""
    return f"datasets.<{source}>.root"


def _message(source: str, root: str | None, key: str, problem: str) -> str:
    if root is None:
        where = f"{key} is not set: source {source!r} reads its files from disk"
    else:
        resolved = os.path.abspath(os.path.expanduser(root))
        shown = repr(root) if resolved == root else f"{root!r} (resolved: {resolved})"
        where = f"{key} = {shown} does not hold the {source} layout"
    layout = "\n".join("    " + line for line in LAYOUTS[source].splitlines())
    return (
        f"{where}\n"
        f"  missing: {problem}\n"
        f"  expected layout:\n{layout}\n"
        f"  fix: put the dataset there, or point {key} at the directory that holds it ({_FIXES[source]})"
    )


def _missing_files(source: str, root: str) -> list[str]:
    def present(rel: str) -> bool:
        path = os.path.join(root, rel)
        return os.path.isdir(path) if rel.endswith("/") else os.path.isfile(path)

    return [rel for rel in REQUIRED_FILES[source] if not present(rel)]


def _class_dirs(split_dir: str) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def _has_image(class_dir: str) -> bool:
    with os.scandir(class_dir) as it:
        return any(e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) for e in it)


def _preview(names: list[str], limit: int = 5) -> str:
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _imagenet_problem(root: str, splits: tuple[str, str] = ("train", "val")) -> str | None:
    """What is wrong with an ImageNet root, looking only at the split dirs and one class dir each.

    Also checks any other two-split ``ImageFolder`` root (Birdsnap: ``splits=("train", "test")``).
    """
    first_split, other = splits
    missing = [f"{s}/" for s in splits if not os.path.isdir(os.path.join(root, s))]
    if missing:
        return " and ".join(os.path.join(root, m) for m in missing)
    classes: dict[str, list[str]] = {}
    for split in splits:
        split_dir = os.path.join(root, split)
        classes[split] = _class_dirs(split_dir)
        if not classes[split]:
            flat = " (images lie directly in it: sort them into <wnid>/ folders)" if _has_image(split_dir) else ""
            return f"class folders (<wnid>/) in {split_dir}/{flat}"
    only_train = sorted(set(classes[first_split]) - set(classes[other]))
    only_val = sorted(set(classes[other]) - set(classes[first_split]))
    if only_train or only_val:
        parts = []
        if only_train:
            parts.append(f"{other}/ lacks {len(only_train)} class folder(s) of {first_split}/: {_preview(only_train)}")
        if only_val:
            parts.append(f"{first_split}/ lacks {len(only_val)} class folder(s) of {other}/: {_preview(only_val)}")
        return "; ".join(parts) + (
            f" ({first_split}/ and {other}/ must have the same class folders, or labels would not match)"
        )
    for split in splits:
        first = os.path.join(root, split, classes[split][0])
        if not _has_image(first):
            return f"image files ({', '.join(IMAGE_SUFFIXES)}, any case) in {first}/"
    return None


def check_dataset_root(source: str, root: str | None, key: str) -> None:
    """Raise :class:`DatasetRootError` naming ``key`` unless ``root`` holds ``source``'s layout.

    ``digits`` is bundled with scikit-learn and needs no root, nor do the generated
    ``shapes``/``gratings`` and the held-out digits tasks. Cheap by design: file existence
    for MNIST/CIFAR and the transfer datasets (files and top directories); for ImageNet and Birdsnap the split dirs, their class-folder names, and one image in the
    first class folder of each split.
    """
    if source in ("digits", *PROCEDURAL_SOURCES, *HELDOUT_SOURCES):  # bundled, generated, or made of digits
        return
    if source not in LAYOUTS:
        raise ValueError(f"unknown dataset source {source!r}; known: digits, {', '.join(sorted(LAYOUTS))}")
    if root is None:
        raise DatasetRootError(_message(source, root, key, f"the root directory (set {key})"))
    path = os.path.expanduser(root)
    if not os.path.isdir(path):
        what = "is a file, not a directory" if os.path.exists(path) else "does not exist"
        raise DatasetRootError(_message(source, root, key, f"the root directory itself ({path} {what})"))
    if source == "imagenet":
        problem = _imagenet_problem(path)
    elif source == "birdsnap":
        problem = _imagenet_problem(path, ("train", "test"))
    else:
        missing = _missing_files(source, path)
        problem = ", ".join(os.path.join(path, m) for m in missing) if missing else None
    if problem is not None:
        raise DatasetRootError(_message(source, root, key, problem))
