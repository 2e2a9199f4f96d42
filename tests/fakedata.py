"""Writers of tiny fake datasets in the exact on-disk formats torchvision reads.

Tests must never download, so each writer produces a few images in the real format of its
source (idx-ubyte for MNIST, Python-2-style pickles for CIFAR, JPEG folders for ImageNet). Every
image carries class-dependent structure (:func:`fake_image`: brightness grows with the label, plus
a row/column ramp that is not flip-symmetric), so a test can check that pixels, labels and
transforms line up; and every writer returns the labels it wrote.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_FINE_LABEL_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
CIFAR100_COARSE_LABEL_NAMES = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
    "household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes "
    "large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals trees "
    "vehicles_1 vehicles_2"
).split()
assert len(CIFAR100_FINE_LABEL_NAMES) == 100 and len(CIFAR100_COARSE_LABEL_NAMES) == 20


def fake_labels(n: int, num_classes: int, split: str) -> list[int]:
    """Train sample i has label i mod k; test labels run backwards, so mixing up splits shows."""
    if split == "train":
        return [i % num_classes for i in range(n)]
    return [(num_classes - 1 - i) % num_classes for i in range(n)]


def fake_pixel(label: int, num_classes: int, channel: int, row: int, col: int) -> int:
    """The uint8 value of one pixel of every fake image of class ``label`` (rows/cols < 32)."""
    return (label * 120) // max(num_classes - 1, 1) + row + 2 * col + 8 * channel


def fake_image(label: int, num_classes: int, channels: int, height: int, width: int) -> np.ndarray:
    """A (channels, height, width) uint8 image built from :func:`fake_pixel`."""
    c, r, w = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
    return np.asarray(fake_pixel(label, num_classes, c, r, w), dtype=np.uint8)  # type: ignore[arg-type]


# --- MNIST: big-endian idx-ubyte files, uncompressed, in <root>/MNIST/raw/ ---------------------------------


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake_mnist(root: str | os.PathLike, n_train: int = 30, n_test: int = 10) -> dict[str, list[int]]:
    """The four idx files (image magic 2051, label magic 2049) with 28x28 grey images."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    labels = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        labels[split] = fake_labels(n, 10, split)
        images = np.stack([fake_image(y, 10, 1, 28, 28)[0] for y in labels[split]]) if n else np.zeros((0, 28, 28))
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", 2051, images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", 2049, np.asarray(labels[split]))
    return labels


# --- CIFAR: pickles as written by Python 2 --------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickles ``bytes`` as Python 2 ``str`` opcodes, as in the real CIFAR files.

    So, like the real batches, loading with ``encoding="bytes"`` (the CIFAR website's recipe)
    gives keys such as ``b"data"``, and with ``encoding="latin1"`` (torchvision) gives ``"data"``.
    A plain Python 3 pickle of ``{b"data": ...}`` would only work with the first.
    """

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        op = pickle.SHORT_BINSTRING + struct.pack("<B", n) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(op + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _dump_py2(path: Path, obj: object) -> None:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue())


def _cifar_rows(labels: list[int], num_classes: int) -> np.ndarray:
    """(N, 3072) uint8: each row is the 1024 red, then green, then blue values, row-major."""
    images = [fake_image(y, num_classes, 3, 32, 32) for y in labels]
    return np.stack(images).reshape(len(labels), 3072) if labels else np.zeros((0, 3072), dtype=np.uint8)


def _filenames(labels: list[int], names: list[str], start: int) -> list[bytes]:
    return [f"{names[y]}_s_{start + i:06d}.png".encode() for i, y in enumerate(labels)]


def write_fake_cifar10(root: str | os.PathLike, n_train: int = 50, n_test: int = 20) -> dict[str, list[int]]:
    """``cifar-10-batches-py/``: five train batches (n_train split over them), test_batch, batches.meta."""
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    names = [n.encode() for n in CIFAR10_LABEL_NAMES]
    labels = {"train": fake_labels(n_train, 10, "train"), "test": fake_labels(n_test, 10, "test")}
    bounds = np.linspace(0, n_train, 6).astype(int)
    batches = [(f"data_batch_{i + 1}", f"training batch {i + 1} of 5", int(bounds[i]), int(bounds[i + 1])) for i in range(5)]
    for fname, tag, lo, hi in [*batches, ("test_batch", "testing batch 1 of 1", 0, n_test)]:
        ys = (labels["train"] if fname != "test_batch" else labels["test"])[lo:hi]
        _dump_py2(
            base / fname,
            {
                b"batch_label": tag.encode(),
                b"labels": ys,
                b"data": _cifar_rows(ys, 10),
                b"filenames": _filenames(ys, CIFAR10_LABEL_NAMES, lo),
            },
        )
    _dump_py2(base / "batches.meta", {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072})
    return labels


def write_fake_cifar100(root: str | os.PathLike, n_train: int = 50, n_test: int = 20) -> dict[str, list[int]]:
    """``cifar-100-python/``: train, test (fine and coarse labels) and meta; returns the fine labels."""
    base = Path(root) / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    labels = {"train": fake_labels(n_train, 100, "train"), "test": fake_labels(n_test, 100, "test")}
    for split, ys in labels.items():
        _dump_py2(
            base / split,
            {
                b"filenames": _filenames(ys, CIFAR100_FINE_LABEL_NAMES, 0),
                b"batch_label": f"{'training' if split == 'train' else 'testing'} batch 1 of 1".encode(),
                b"fine_labels": ys,
                b"coarse_labels": [y // 5 for y in ys],  # not the real fine->coarse map; unused by torchvision
                b"data": _cifar_rows(ys, 100),
            },
        )
    _dump_py2(
        base / "meta",
        {
            b"fine_label_names": [n.encode() for n in CIFAR100_FINE_LABEL_NAMES],
            b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE_LABEL_NAMES],
        },
    )
    return labels


# --- ImageNet: JPEG class folders ---------------------------------------------------------------------------


def fake_wnids(classes: int) -> list[str]:
    """WordNet-id-like folder names whose sorted order is the class order."""
    return [f"n{1440764 + 1000 * k:08d}" for k in range(classes)]


def write_fake_imagenet(
    root: str | os.PathLike,
    classes: int = 3,
    per_class: int = 4,
    val_per_class: int = 2,
    size: tuple[int, int] = (40, 32),
) -> dict[str, list[int]]:
    """``train/<wnid>/<wnid>_<i>.JPEG`` and ``val/<wnid>/ILSVRC2012_val_<n>.JPEG``, ``size`` = (W, H).

    Returns the labels in ``ImageFolder`` order (sorted wnids, then sorted file names).
    """
    from PIL import Image

    width, height = size
    labels: dict[str, list[int]] = {"train": [], "val": []}
    val_counter = 0
    for k, wnid in enumerate(fake_wnids(classes)):
        image = Image.fromarray(fake_image(k, classes, 3, height, width).transpose(1, 2, 0))
        for split, count in (("train", per_class), ("val", val_per_class)):
            folder = Path(root) / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                if split == "train":
                    name = f"{wnid}_{i}.JPEG"
                else:
                    val_counter += 1
                    name = f"ILSVRC2012_val_{val_counter:08d}.JPEG"
                image.save(folder / name, format="JPEG", quality=95)
                labels[split].append(k)
    return labels
