"""The on-disk layout each real dataset source reads, and a cheap check of a configured root.

Why here: the Snakefile checks every configured ``datasets.<name>.root`` at parse time, so a
wrong path or a garbage file fails in a second with one message that names the key and says what
to fix, instead of deep inside a training job. So this module imports only the standard library,
and every check looks only at a handful of paths and file headers (never walks an ImageNet tree,
never reads a whole file): CIFAR files must start like a pickled dict (and, with
``verify_checksums``, be at least as large as the official release's images), MNIST idx files
must have their magic number, 28x28 images, matching counts and the size their header implies,
one image per image folder must start like a JPEG or PNG, ``.mat`` files like MATLAB's, JSON and
text annotation files like JSON and text. The md5 check of the official files (CIFAR, Flowers)
reads whole files, so it runs when a job loads the data, still naming the key. The layouts are
exactly what torchvision's ``MNIST``, ``CIFAR10``/``CIFAR100``, ``ImageFolder`` and the transfer
datasets' classes (``FGVCAircraft``, ``StanfordCars``, ``DTD``, ``Flowers102``, ``Food101``,
``OxfordIIITPet``, ``SUN397``, ``Caltech101``/``Caltech256``) read with ``download=False``.
"""

from __future__ import annotations

import math
import os
import struct

from .bundles import HELDOUT_SOURCES, PROCEDURAL_SOURCES

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")  # compared lower-cased: ImageNet ships ".JPEG"

# Files that must exist, relative to the root (MNIST and CIFAR are a fixed set of files); an entry
# ending in "/" is a directory that must exist.
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(
        f"MNIST/raw/{f}"
        for f in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    ),
    "cifar10": tuple(
        f"cifar-10-batches-py/{f}" for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    ),
    "cifar100": tuple(f"cifar-100-python/{f}" for f in ("train", "test", "meta")),
    "aircraft": tuple(
        f"fgvc-aircraft-2013b/data/{f}"
        for f in ("variants.txt", "images_variant_trainval.txt", "images_variant_test.txt", "images/")
    ),
    "cars": tuple(
        f"stanford_cars/{f}"
        for f in (
            "devkit/cars_meta.mat",
            "devkit/cars_train_annos.mat",
            "cars_test_annos_withlabels.mat",
            "cars_train/",
            "cars_test/",
        )
    ),
    "dtd": tuple(f"dtd/dtd/{f}" for f in ("labels/train1.txt", "labels/val1.txt", "labels/test1.txt", "images/")),
    "flowers": tuple(f"flowers-102/{f}" for f in ("imagelabels.mat", "setid.mat", "jpg/")),
    "food101": tuple(f"food-101/{f}" for f in ("meta/train.json", "meta/test.json", "images/")),
    "pets": tuple(f"oxford-iiit-pet/{f}" for f in ("annotations/trainval.txt", "annotations/test.txt", "images/")),
    "sun397": tuple(
        f"SUN397/{f}" for f in ("ClassName.txt", "Partitions/Training_01.txt", "Partitions/Testing_01.txt")
    ),
    "caltech101": ("caltech101/101_ObjectCategories/",),
    "caltech256": ("caltech256/256_ObjectCategories/",),
}

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG: what PIL is asked to read
CIFAR_PIXEL_BYTES = 3 * 32 * 32  # one image of a batch's "data" array
# Images in each file of the official release: with verify_checksums a file must hold at least their pixels.
CIFAR_OFFICIAL_IMAGES: dict[str, int] = {
    **{f"cifar-10-batches-py/{f}": 10_000 for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]},
    "cifar-100-python/train": 50_000,
    "cifar-100-python/test": 10_000,
}
# MNIST: (images, labels) idx files per split, with their magic numbers (uint8 data, 3 and 1 dimensions).
MNIST_SPLITS = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
MNIST_MAGIC = {3: 2051, 1: 2049}
MNIST_SIDE = 28
# Folders of images (relative to the root) and how many class-folder levels lie between them and
# the images: the check reads the header of the first image (by name) of the first class folder.
IMAGE_FOLDERS: dict[str, tuple[tuple[str, int], ...]] = {
    "aircraft": (("fgvc-aircraft-2013b/data/images/", 0),),
    "caltech101": (("caltech101/101_ObjectCategories/", 1),),
    "caltech256": (("caltech256/256_ObjectCategories/", 1),),
    "cars": (("stanford_cars/cars_train/", 0), ("stanford_cars/cars_test/", 0)),
    "dtd": (("dtd/dtd/images/", 1),),
    "flowers": (("flowers-102/jpg/", 0),),
    "food101": (("food-101/images/", 1),),
    "pets": (("oxford-iiit-pet/images/", 0),),
}  # sun397: the first class of ClassName.txt; imagenet, birdsnap: the first class folder of each split

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


def _message(source: str, root: str | None, key: str, problem: str, malformed: bool = False) -> str:
    if root is None:
        where = f"{key} is not set: source {source!r} reads its files from disk"
    else:
        resolved = os.path.abspath(os.path.expanduser(root))
        shown = repr(root) if resolved == root else f"{root!r} (resolved: {resolved})"
        where = f"{key} = {shown} does not hold the {source} layout"
    layout = "\n".join("    " + line for line in LAYOUTS[source].splitlines())
    fix = (
        f"re-download the dataset and replace those files ({_FIXES[source]})"
        if malformed
        else f"put the dataset there, or point {key} at the directory that holds it ({_FIXES[source]})"
    )
    return (
        f"{where}\n  {'malformed' if malformed else 'missing'}: {problem}\n  expected layout:\n{layout}\n  fix: {fix}"
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


# --- structural checks of the files: headers and sizes, never a whole file ---------------------------------


def _head(path: str, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _first_image(folder: str, depth: int) -> str | None:
    """The first image file (by name) in ``folder``, or in its first class folder (by name) if ``depth``."""
    if depth:
        subdirs = _class_dirs(folder)
        return _first_image(os.path.join(folder, subdirs[0]), depth - 1) if subdirs else None
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)]
    return os.path.join(folder, min(names)) if names else None


def _image_problem(folder: str, depth: int) -> str | None:
    image = _first_image(folder, depth)
    if image is None:
        where = f"{folder}/ (in its first class folder)" if depth else f"{folder}/"
        return f"no image files ({', '.join(IMAGE_SUFFIXES)}, any case) in {where}"
    if not _head(image, 8).startswith(IMAGE_MAGIC):
        return f"{image} is not a JPEG or PNG image (its first bytes are {_head(image, 8)!r})"
    return None


def _imagenet_malformed(root: str, splits: tuple[str, str] = ("train", "val")) -> list[str]:
    """The first image of the first class folder of each split, if it is no JPEG/PNG."""
    return [p for s in splits if (p := _image_problem(os.path.join(root, s), depth=1))]


def _pickled_dict(head: bytes) -> bool:
    """Whether ``head`` starts a pickle of a dict, as CIFAR's files (protocol 2) do."""
    if head[:1] == b"\x80":  # PROTO n
        if len(head) < 2 or not 2 <= head[1] <= 5:
            return False
        head = head[2:]
        if head[:1] == b"\x95":  # FRAME (protocol 4+) and its 8-byte length
            head = head[9:]
    return head[:1] == b"}" or head[:2] == b"(d"  # EMPTY_DICT, or MARK DICT (protocol 0)


def _cifar_problems(source: str, root: str, verify_checksums: bool) -> list[str]:
    problems, small = [], []
    for rel in REQUIRED_FILES[source]:
        path = os.path.join(root, rel)
        if not _pickled_dict(_head(path, 16)):
            problems.append(
                f"{path} is not a pickled dict, as every CIFAR file is (its first bytes are {_head(path, 8)!r})"
            )
        elif verify_checksums and rel in CIFAR_OFFICIAL_IMAGES:
            least = CIFAR_OFFICIAL_IMAGES[rel] * CIFAR_PIXEL_BYTES
            if (size := os.path.getsize(path)) < least:
                small.append(f"{path} is {size:,} bytes < {least:,} ({CIFAR_OFFICIAL_IMAGES[rel]:,} images)")
    if small:
        problems.append(
            "files smaller than the pixels of the official release's (verify_checksums is on: a truncated download, or "
            f"not the official files): {', '.join(small)}"
        )
    return problems


def _idx_dims(path: str, ndim: int) -> tuple[tuple[int, ...] | None, str | None]:
    """(dims, None) for a well-formed uint8 idx file of ``ndim`` dimensions, else (None, problem)."""
    head = _head(path, 4 + 4 * ndim)
    if len(head) < 4 + 4 * ndim or struct.unpack(">I", head[:4])[0] != MNIST_MAGIC[ndim]:
        return None, f"{path} is not an idx file of magic number {MNIST_MAGIC[ndim]} (its first bytes are {head[:8]!r})"
    dims = struct.unpack(f">{ndim}I", head[4:])
    expected = 4 + 4 * ndim + math.prod(dims)
    if (size := os.path.getsize(path)) != expected:
        shape = " x ".join(map(str, dims))
        return (
            None,
            f"{path} is {size:,} bytes, but its header ({shape} bytes of data) makes {expected:,}: truncated or padded",
        )
    return dims, None


def _mnist_problems(root: str) -> list[str]:
    problems = []
    for images_name, labels_name in MNIST_SPLITS:
        images, labels = (os.path.join(root, "MNIST", "raw", n) for n in (images_name, labels_name))
        image_dims, problem = _idx_dims(images, 3)
        problems += [problem] if problem else []
        label_dims, problem = _idx_dims(labels, 1)
        problems += [problem] if problem else []
        if image_dims and image_dims[1:] != (MNIST_SIDE, MNIST_SIDE):
            problems.append(
                f"{images} holds {image_dims[1]}x{image_dims[2]} images, not MNIST's {MNIST_SIDE}x{MNIST_SIDE}"
            )
        if image_dims and label_dims and image_dims[0] != label_dims[0]:
            problems.append(f"{images} holds {image_dims[0]:,} images but {labels} {label_dims[0]:,} labels")
    return problems


def _annotation_problems(source: str, root: str) -> list[str]:
    """Headers of the annotation files: ``.mat`` files MATLAB's, JSON files JSON, text files no NUL bytes."""
    problems = []
    for rel in REQUIRED_FILES[source]:
        path = os.path.join(root, rel)
        if rel.endswith("/"):
            continue
        head = _head(path, 4096)
        if rel.endswith(".mat") and not head.startswith(b"MATLAB"):
            problems.append(f"{path} is not a MATLAB .mat file (its first bytes are {head[:8]!r})")
        elif rel.endswith(".json") and head.lstrip()[:1] not in (b"{", b"["):
            problems.append(f"{path} is not a JSON file (its first bytes are {head[:8]!r})")
        elif rel.endswith(".txt") and b"\0" in head:
            problems.append(f"{path} is not a text file (it holds NUL bytes)")
    return problems


def _image_folders(source: str, root: str) -> tuple[tuple[str, int], ...]:
    if source != "sun397":
        return IMAGE_FOLDERS.get(source, ())
    with open(os.path.join(root, "SUN397", "ClassName.txt"), "rb") as f:
        first = f.readline().decode("utf-8", "replace").strip().strip("/")
    return ((f"SUN397/{first}/", 0),) if first else ()


def _malformed(source: str, root: str, verify_checksums: bool) -> list[str]:
    """What is wrong inside the files of a root whose layout is complete (headers and sizes only)."""
    if source in ("cifar10", "cifar100"):
        return _cifar_problems(source, root, verify_checksums)
    if source == "mnist":
        return _mnist_problems(root)
    if source in ("imagenet", "birdsnap"):
        return _imagenet_malformed(root, ("train", "val") if source == "imagenet" else ("train", "test"))
    problems = _annotation_problems(source, root)
    if problems:  # sun397 reads its first class folder from ClassName.txt
        return problems
    folders = _image_folders(source, root)
    return [p for rel, depth in folders if (p := _image_problem(os.path.join(root, rel.rstrip("/")), depth))]


def check_dataset_root(source: str, root: str | None, key: str, verify_checksums: bool = False) -> None:
    """Raise :class:`DatasetRootError` naming ``key`` unless ``root`` holds ``source``'s layout.

    ``digits`` is bundled with scikit-learn and needs no root, nor do the generated
    ``shapes``/``gratings`` and the held-out digits tasks. Cheap by design: the files and top
    directories of the layout (for ImageNet and Birdsnap the split dirs, their class-folder names
    and the first class folder of each split), then the headers and sizes of those files and one
    image per image folder (see the module docstring). ``verify_checksums`` (the entry's option)
    also asks CIFAR files for the official release's sizes.
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
    try:
        malformed = _malformed(source, path, verify_checksums)
    except OSError as e:  # unreadable file or folder (permissions...)
        malformed = [f"cannot read {e.filename}: {e.strerror}"]
    if malformed:
        raise DatasetRootError(_message(source, root, key, "; ".join(malformed), malformed=True))
