"""The on-disk layout each real dataset source reads, and a cheap check of a configured root.

Why here: the Snakefile checks every configured ``datasets.<name>.root`` at parse time, so a
wrong path fails in a second with one message that says what to fix, instead of deep inside a
training job. So this module imports only the standard library, and every check looks only at a
handful of paths (never walks an ImageNet tree). The layouts are exactly what torchvision's
``MNIST``, ``CIFAR10``/``CIFAR100`` and ``ImageFolder`` read with ``download=False``.
"""

from __future__ import annotations

import os

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")  # compared lower-cased: ImageNet ships ".JPEG"

# Files that must exist, relative to the root (MNIST and CIFAR are a fixed set of files).
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(
        f"MNIST/raw/{f}"
        for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    ),
    "cifar10": tuple(f"cifar-10-batches-py/{f}" for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
    "cifar100": tuple(f"cifar-100-python/{f}" for f in ("train", "test", "meta")),
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
    return [rel for rel in REQUIRED_FILES[source] if not os.path.isfile(os.path.join(root, rel))]


def _class_dirs(split_dir: str) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def _has_image(class_dir: str) -> bool:
    with os.scandir(class_dir) as it:
        return any(e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) for e in it)


def _preview(names: list[str], limit: int = 5) -> str:
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _imagenet_problem(root: str) -> str | None:
    """What is wrong with an ImageNet root, looking only at the split dirs and one class dir each."""
    missing = [f"{s}/" for s in ("train", "val") if not os.path.isdir(os.path.join(root, s))]
    if missing:
        return " and ".join(os.path.join(root, m) for m in missing)
    classes: dict[str, list[str]] = {}
    for split in ("train", "val"):
        split_dir = os.path.join(root, split)
        classes[split] = _class_dirs(split_dir)
        if not classes[split]:
            flat = " (images lie directly in it: sort them into <wnid>/ folders)" if _has_image(split_dir) else ""
            return f"class folders (<wnid>/) in {split_dir}/{flat}"
    only_train = sorted(set(classes["train"]) - set(classes["val"]))
    only_val = sorted(set(classes["val"]) - set(classes["train"]))
    if only_train or only_val:
        parts = []
        if only_train:
            parts.append(f"val/ lacks {len(only_train)} class folder(s) of train/: {_preview(only_train)}")
        if only_val:
            parts.append(f"train/ lacks {len(only_val)} class folder(s) of val/: {_preview(only_val)}")
        return "; ".join(parts) + " (train/ and val/ must have the same class folders, or labels would not match)"
    for split in ("train", "val"):
        first = os.path.join(root, split, classes[split][0])
        if not _has_image(first):
            return f"image files ({', '.join(IMAGE_SUFFIXES)}, any case) in {first}/"
    return None


def check_dataset_root(source: str, root: str | None, key: str) -> None:
    """Raise :class:`DatasetRootError` naming ``key`` unless ``root`` holds ``source``'s layout.

    ``digits`` is bundled with scikit-learn and needs no root. Cheap by design: file existence
    for MNIST/CIFAR; for ImageNet the split dirs, their class-folder names, and one image in the
    first class folder of each split.
    """
    if source == "digits":
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
    else:
        missing = _missing_files(source, path)
        problem = ", ".join(os.path.join(path, m) for m in missing) if missing else None
    if problem is not None:
        raise DatasetRootError(_message(source, root, key, problem))
