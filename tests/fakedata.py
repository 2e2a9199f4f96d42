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
    batches = [
        (f"data_batch_{i + 1}", f"training batch {i + 1} of 5", int(bounds[i]), int(bounds[i + 1])) for i in range(5)
    ]
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


class _Payload:
    """Unpickles as ``call(arg)``: what a tampered data file would run in an unrestricted loader."""

    def __init__(self, call: object, arg: str) -> None:
        self.call, self.arg = call, arg

    def __reduce__(self) -> tuple:
        return self.call, (self.arg,)


def payload_creating(marker: str | os.PathLike, via: str = "system") -> _Payload:
    """An object whose unpickling creates ``marker``: through ``os.system`` (a shell command,
    pickled as ``posix.system``) or ``builtins.exec`` (Python code)."""
    import builtins

    if via == "system":
        return _Payload(os.system, f"touch {os.fspath(marker)!s}")
    return _Payload(builtins.exec, f"open({os.fspath(marker)!r}, 'w').close()")


def write_malicious_cifar(
    root: str | os.PathLike,
    marker: str | os.PathLike,
    source: str = "cifar10",
    file: str | None = None,
    via: str = "system",
) -> Path:
    """A fake CIFAR root in the real format whose ``file`` (default: the first training batch) is
    replaced by a batch, pickled as the real ones are (a protocol-2 dict), whose ``data`` entry
    runs :func:`payload_creating` ``marker`` when unpickled. Returns the tampered file."""
    if source == "cifar10":
        write_fake_cifar10(root)
        path = Path(root) / "cifar-10-batches-py" / (file or "data_batch_1")
    else:
        write_fake_cifar100(root)
        path = Path(root) / "cifar-100-python" / (file or "train")
    _dump_py2(path, {b"batch_label": b"training batch 1 of 5", b"labels": [0], b"data": payload_creating(marker, via)})
    return path


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


# --- Downstream datasets of the sparse-transfer study, in the layouts torchvision 0.29 reads ------------------
#
# Each writer returns {"classes": [...in label order...], "train": labels, "test": labels} (train and test in
# the order the source yields them) plus, for Caltech, "per_class" (images written per class, label order).


def _save_tiny(path: Path, label: int, num_classes: int, size: tuple[int, int] = (10, 8), mode: str = "RGB") -> None:
    """A tiny JPEG of class ``label`` (``size`` = (W, H)); ``mode="L"`` writes a greyscale one."""
    from PIL import Image

    width, height = size
    image = Image.fromarray(fake_image(label, num_classes, 3, height, width).transpose(1, 2, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path, format="JPEG", quality=95)


def write_fake_aircraft(root: str | os.PathLike, n_train: int = 7, n_test: int = 5) -> dict[str, list]:
    """``fgvc-aircraft-2013b/data/``: variants.txt, images_variant_{trainval,test}.txt, images/<id>.jpg."""
    classes = ["707-320", "A300B4", "Boeing 717"]  # names with spaces occur ("Boeing 717")
    data = Path(root) / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("".join(f"{c}\n" for c in classes))
    out: dict[str, list] = {"classes": classes}
    number = 1000000
    for split, fname, n in (("train", "trainval", n_train), ("test", "test", n_test)):
        out[split] = fake_labels(n, len(classes), split)
        lines = []
        for y in out[split]:
            number += 1
            _save_tiny(data / "images" / f"{number:07d}.jpg", y, len(classes))
            lines.append(f"{number:07d} {classes[y]}\n")
        (data / f"images_variant_{fname}.txt").write_text("".join(lines))
    return out


def write_fake_birdsnap(root: str | os.PathLike, per_class: tuple[int, int] = (3, 2)) -> dict[str, list]:
    """Salman et al.'s ImageFolder copy: ``train/<species>/*.jpg`` and ``test/<species>/*.jpg``."""
    classes = ["Acadian_Flycatcher", "Bald_Eagle", "Cedar_Waxwing"]
    out: dict[str, list] = {"classes": classes}
    for split, n in zip(("train", "test"), per_class):
        out[split] = []
        for y, c in enumerate(classes):
            for i in range(n):
                _save_tiny(Path(root) / split / c / f"{c}_{split}_{i}.jpg", y, len(classes))
                out[split].append(y)
    return out


def write_fake_caltech101(root: str | os.PathLike, counts: tuple[int, ...] = (32, 30, 33)) -> dict[str, list]:
    """``caltech101/101_ObjectCategories/<cat>/image_%04d.jpg`` plus a BACKGROUND_Google folder.

    Class k (sorted folder names, background dropped) gets ``counts[k]`` images; its third image is
    greyscale, as some real Caltech images are.
    """
    classes = ["Faces", "accordion", "airplanes"][: len(counts)]  # sorted: upper case first
    base = Path(root) / "caltech101" / "101_ObjectCategories"
    for i in range(3):
        _save_tiny(base / "BACKGROUND_Google" / f"image_{i + 1:04d}.jpg", 0, 1)
    for y, (c, n) in enumerate(zip(classes, counts)):
        for i in range(1, n + 1):
            _save_tiny(base / c / f"image_{i:04d}.jpg", y, len(classes), size=(6, 5), mode="L" if i == 3 else "RGB")
    return _first_n(classes, list(counts), 30)


def write_fake_caltech256(root: str | os.PathLike, counts: tuple[int, ...] = (62, 61, 60)) -> dict[str, list]:
    """``caltech256/256_ObjectCategories/<NNN.name>/<NNN>_%04d.jpg`` (plus a stray non-jpg, ignored)."""
    classes = ["001.ak47", "002.american-flag", "003.backpack"][: len(counts)]
    base = Path(root) / "caltech256" / "256_ObjectCategories"
    for y, (c, n) in enumerate(zip(classes, counts)):
        for i in range(1, n + 1):
            _save_tiny(base / c / f"{c[:3]}_{i:04d}.jpg", y, len(classes), size=(6, 5), mode="L" if i == 2 else "RGB")
    (base / classes[0] / "RENAME2").write_text("not an image\n")  # the real 198.spider has such a file
    return _first_n(classes, list(counts), 60)


def _first_n(classes: list[str], counts: list[int], n: int) -> dict[str, list]:
    return {
        "classes": classes,
        "per_class": counts,
        "train": [y for y, c in enumerate(counts) for _ in range(min(c, n))],
        "test": [y for y, c in enumerate(counts) for _ in range(max(c - n, 0))],
    }


def write_fake_cars(root: str | os.PathLike, n_train: int = 6, n_test: int = 4) -> dict[str, list]:
    """``stanford_cars/``: devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat,
    cars_train/, cars_test/ (the .mat files as ``scipy.io.savemat`` struct arrays, 1-based classes)."""
    import numpy as np
    from scipy.io import savemat

    classes = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi TTS Coupe 2012"]
    base = Path(root) / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array([classes], dtype=object)})
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    out: dict[str, list] = {"classes": classes}
    for split, n, mat in (
        ("train", n_train, base / "devkit" / "cars_train_annos.mat"),
        ("test", n_test, base / "cars_test_annos_withlabels.mat"),
    ):
        out[split] = fake_labels(n, len(classes), split)
        annos = np.zeros((1, n), dtype=[(f, "O") for f in fields])
        for i, y in enumerate(out[split]):
            fname = f"{i + 1:05d}.jpg"
            _save_tiny(base / f"cars_{split}" / fname, y, len(classes))
            annos[0, i] = (1, 1, 9, 7, y + 1, fname)
        savemat(mat, {"annotations": annos})
    return out


def write_fake_dtd(root: str | os.PathLike, per_class: tuple[int, int, int] = (2, 1, 2)) -> dict[str, list]:
    """``dtd/dtd/labels/{train,val,test}1.txt`` ("<class>/<file>") and ``dtd/dtd/images/<class>/<file>``.

    Also a partition-2 file that must be ignored. "train" is train1 then val1 (the paper's train).
    """
    classes = ["banded", "blotchy", "zigzagged"]
    data = Path(root) / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True, exist_ok=True)
    out: dict[str, list] = {"classes": classes, "train": [], "test": []}
    number = 0
    for split, n in zip(("train", "val", "test"), per_class):
        lines = []
        for y, c in enumerate(classes):
            for _ in range(n):
                number += 1
                _save_tiny(data / "images" / c / f"{c}_{number:04d}.jpg", y, len(classes))
                lines.append(f"{c}/{c}_{number:04d}.jpg\n")
                out["test" if split == "test" else "train"].append(y)
        (data / "labels" / f"{split}1.txt").write_text("".join(lines))
    (data / "labels" / "train2.txt").write_text(f"banded/banded_{number:04d}.jpg\n")
    return out


def write_fake_flowers(root: str | os.PathLike, n: int = 10) -> dict[str, list]:
    """``flowers-102/``: jpg/image_%05d.jpg, imagelabels.mat (1-based labels), setid.mat (trnid/valid/tstid).

    Image ids are interleaved between the sets, as in the real file; "train" is trnid then valid.
    """
    import numpy as np
    from scipy.io import savemat

    base = Path(root) / "flowers-102"
    labels = [(i * 7) % 5 for i in range(n)]  # labels 0..4 of the 102
    for i, y in enumerate(labels):
        _save_tiny(base / "jpg" / f"image_{i + 1:05d}.jpg", y, 102)
    ids = {"trnid": list(range(1, n + 1, 3)), "valid": list(range(2, n + 1, 3)), "tstid": list(range(3, n + 1, 3))}
    savemat(base / "imagelabels.mat", {"labels": np.array([[y + 1 for y in labels]], dtype=np.uint8)})
    savemat(base / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in ids.items()})
    return {
        "classes": [],
        "train": [labels[i - 1] for i in ids["trnid"] + ids["valid"]],
        "test": [labels[i - 1] for i in ids["tstid"]],
    }


def write_fake_food101(root: str | os.PathLike, per_class: tuple[int, int] = (3, 2)) -> dict[str, list]:
    """``food-101/meta/{train,test}.json`` ({class: ["class/id", ...]}) and ``food-101/images/<class>/<id>.jpg``."""
    import json

    classes = ["apple_pie", "baby_back_ribs", "waffles"]
    base = Path(root) / "food-101"
    (base / "meta").mkdir(parents=True, exist_ok=True)
    out: dict[str, list] = {"classes": classes}
    number = 100000
    for split, n in zip(("train", "test"), per_class):
        meta = {}
        out[split] = []
        for y, c in enumerate(classes):
            meta[c] = []
            for _ in range(n):
                number += 1
                _save_tiny(base / "images" / c / f"{number}.jpg", y, len(classes))
                meta[c].append(f"{c}/{number}")
                out[split].append(y)
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))
    return out


def write_fake_pets(root: str | os.PathLike, per_class: tuple[int, int] = (3, 2)) -> dict[str, list]:
    """``oxford-iiit-pet/annotations/{trainval,test}.txt`` ("<Breed>_<n> <class id> <species> <breed id>")
    and ``oxford-iiit-pet/images/<Breed>_<n>.jpg``."""
    breeds = [("Abyssinian", 1), ("american_bulldog", 2), ("Bengal", 1)]  # (file prefix, species: 1 cat 2 dog)
    base = Path(root) / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    out: dict[str, list] = {"classes": ["Abyssinian", "American Bulldog", "Bengal"]}
    number = 0
    for split, fname, n in (("train", "trainval", per_class[0]), ("test", "test", per_class[1])):
        lines = []
        out[split] = []
        for y, (breed, species) in enumerate(breeds):
            for _ in range(n):
                number += 1
                _save_tiny(base / "images" / f"{breed}_{number}.jpg", y, len(breeds))
                lines.append(f"{breed}_{number} {y + 1} {species} {y + 1}\n")
                out[split].append(y)
        (base / "annotations" / f"{fname}.txt").write_text("".join(lines))
    return out


def write_fake_sun397(root: str | os.PathLike, per_class: tuple[int, int] = (2, 2)) -> dict[str, list]:
    """``SUN397/``: ClassName.txt ("/a/abbey"), <letter>/<class>/sun_<id>.jpg, Partitions/{Training,Testing}_01.txt.

    One class is nested ("/b/bakery/shop", as in the real list); every class also gets an image that
    no partition-01 file lists (SUN397 has ~100 per class, partition 01 uses 50 + 50), and a
    partition-02 file exists that must be ignored.
    """
    classes = ["/a/abbey", "/b/bakery/shop", "/c/castle"]
    base = Path(root) / "SUN397"
    (base / "Partitions").mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("".join(f"{c}\n" for c in classes))
    out: dict[str, list] = {"classes": [c[3:] for c in classes]}
    number = 0
    for split, fname, n in (
        ("train", "Training_01.txt", per_class[0]),
        ("test", "Testing_01.txt", per_class[1]),
        ("unused", None, 1),
    ):
        lines = []
        out[split] = []
        for y, c in enumerate(classes):
            for _ in range(n):
                number += 1
                rel = f"{c}/sun_{number:016d}.jpg"
                _save_tiny(base / rel.lstrip("/"), y, len(classes))
                lines.append(rel + "\n")
                out[split].append(y)
        if fname:
            (base / "Partitions" / fname).write_text("".join(lines))
    (base / "Partitions" / "Training_02.txt").write_text(lines[0])
    del out["unused"]
    return out
