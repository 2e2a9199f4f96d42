"""The sparse-transfer study's downstream datasets on tiny fakes of their real on-disk layouts."""

from __future__ import annotations

import os
import shutil
import typing
from collections import Counter

import fakedata
import pytest
import torch
import yaml
from torch.utils.data import ConcatDataset, Subset
from torchvision.datasets import Caltech101, Caltech256, ImageFolder, OxfordIIITPet, StanfordCars

from sparselab.config import DataHparams
from sparselab.config.bundles import DATA_SOURCES, TRANSFER_SOURCES
from sparselab.config.hparams import HparamsError
from sparselab.config.roots import LAYOUTS, REQUIRED_FILES, DatasetRootError, check_dataset_root
from sparselab.data import build_source, build_splits, list_sources
from sparselab.data.sources.transfer import CALTECH101_TRAIN_PER_CLASS, CALTECH256_TRAIN_PER_CLASS, DATASET_STATS

SCHEMA = os.path.join(os.path.dirname(__file__), "..", "schemas", "config.schema.yaml")
# Classes each fake has (flowers: torchvision's fixed list of 102 names).
NUM_CLASSES = {name: 3 for name in TRANSFER_SOURCES} | {"flowers": 102}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("transfer")
    out = {}
    for name in TRANSFER_SOURCES:
        root = base / name
        out[name] = (str(root), getattr(fakedata, f"write_fake_{name}")(root))
    return out


def hp_for(roots, name, **kw):
    return DataHparams(
        source=name, root=roots[name][0], **{"image_size": 16, "resize_size": 20, "verify_checksums": False, **kw}
    )


def sample_paths(ds) -> list[str]:
    """The image file behind each sample, in order (through Subset/ConcatDataset)."""
    if isinstance(ds, Subset):
        inner = sample_paths(ds.dataset)
        return [inner[i] for i in ds.indices]
    if isinstance(ds, ConcatDataset):
        return [p for d in ds.datasets for p in sample_paths(d)]
    if isinstance(ds, ImageFolder):
        return [p for p, _ in ds.samples]
    if isinstance(ds, StanfordCars):
        return [p for p, _ in ds._samples]
    if isinstance(ds, OxfordIIITPet):
        return [str(p) for p in ds._images]
    if isinstance(ds, Caltech101):
        return [
            os.path.join(ds.root, "101_ObjectCategories", ds.categories[y], f"image_{k:04d}.jpg")
            for y, k in zip(ds.y, ds.index)
        ]
    if isinstance(ds, Caltech256):
        return [
            os.path.join(ds.root, "256_ObjectCategories", ds.categories[y], f"{y + 1:03d}_{k:04d}.jpg")
            for y, k in zip(ds.y, ds.index)
        ]
    return [str(p) for p in ds._image_files]


@pytest.mark.parametrize("name", TRANSFER_SOURCES)
def test_source_classes_splits_labels_and_shapes(roots, name):
    expected = roots[name][1]
    src = build_source(hp_for(roots, name))
    assert src.info.num_classes == NUM_CLASSES[name] and src.info.input_shape == (3, 16, 16)
    # full finetuning's per-dataset statistics by default, ImageNet's for the linear protocol's features
    assert (src.info.mean, src.info.std) == DATASET_STATS[name]
    imagenet = build_source(hp_for(roots, name, normalize="imagenet"))
    assert imagenet.info.mean == (0.485, 0.456, 0.406) and imagenet.info.std == (0.229, 0.224, 0.225)
    x_dataset, _ = src.test[0]
    x_imagenet, _ = imagenet.test[0]
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in DATASET_STATS[name])
    pixels = x_dataset * std + mean  # the same image in [0, 1] under both normalisations
    renormalised = (pixels - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(3, 1, 1)
    assert torch.allclose(x_imagenet, renormalised, atol=1e-5)
    assert (len(src.train), len(src.train_eval), len(src.test)) == (len(expected["train"]),) * 2 + (
        len(expected["test"]),
    )
    assert [y for _, y in src.train_eval] == expected["train"]
    assert [y for _, y in src.test] == expected["test"]
    train, test = sample_paths(src.train), sample_paths(src.test)
    assert train == sample_paths(src.train_eval)
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)
    assert all(os.path.isfile(p) for p in train + test)
    for ds in (src.train, src.train_eval, src.test):
        x, y = ds[0]
        assert type(x) is torch.Tensor and x.dtype == torch.float32 and x.shape == (3, 16, 16)
        assert isinstance(y, int) and 0 <= y < src.info.num_classes
    assert torch.equal(src.train_eval[1][0], src.train_eval[1][0])
    # The file order does not depend on anything but the files: a second build is identical.
    again = build_source(hp_for(roots, name))
    assert sample_paths(again.train) == train and sample_paths(again.test) == test


@pytest.mark.parametrize(
    ("name", "n"), [("caltech101", CALTECH101_TRAIN_PER_CLASS), ("caltech256", CALTECH256_TRAIN_PER_CLASS)]
)
def test_caltech_first_n_per_class_by_file_number(roots, name, n):
    expected = roots[name][1]
    src = build_source(hp_for(roots, name))
    counts = Counter(y for _, y in src.train_eval)
    assert counts == {y: min(c, n) for y, c in enumerate(expected["per_class"])}
    assert Counter(y for _, y in src.test) == {y: c - n for y, c in enumerate(expected["per_class"]) if c > n}
    numbers = [int(os.path.basename(p)[-8:-4]) for p in sample_paths(src.train)]
    assert max(numbers) == n and all(k > n for k in (int(os.path.basename(p)[-8:-4]) for p in sample_paths(src.test)))
    assert "BACKGROUND_Google" not in {os.path.basename(os.path.dirname(p)) for p in sample_paths(src.train)}
    grey = 2 if name == "caltech101" else 1  # the fake's greyscale image comes out as 3 channels
    assert src.train_eval[grey][0].shape == (3, 16, 16)


def test_dtd_flowers_sun_use_the_papers_partitions(roots):
    dtd = build_source(hp_for(roots, "dtd"))
    names = [os.path.basename(p) for p in sample_paths(dtd.train)]
    assert len(names) == 9 and isinstance(dtd.train, ConcatDataset)  # train1 (6) + val1 (3); train2 ignored
    flowers = build_source(hp_for(roots, "flowers"))
    ids = [int(os.path.basename(p)[6:11]) for p in sample_paths(flowers.train)]
    assert ids == [1, 4, 7, 10, 2, 5, 8]  # trnid then valid
    assert [int(os.path.basename(p)[6:11]) for p in sample_paths(flowers.test)] == [3, 6, 9]
    sun = build_source(hp_for(roots, "sun397"))
    assert sun.train.classes == ["abbey", "bakery/shop", "castle"]
    assert {
        os.path.relpath(p, os.path.join(roots["sun397"][0], "SUN397")).split(os.sep)[1] for p in sample_paths(sun.test)
    } == {"abbey", "bakery", "castle"}
    written = sum(1 for _, _, fs in os.walk(roots["sun397"][0]) for f in fs if f.endswith(".jpg"))
    assert written == 15 and len(sun.train) + len(sun.test) == 12  # the unlisted images are left out


def test_transforms_augmentation_and_interpolation(roots):
    src = build_source(hp_for(roots, "food101"))
    train_ops = [type(t).__name__ for t in src.train.transform.transforms]
    assert train_ops[:3] == ["ToRGB", "RandomResizedCrop", "RandomHorizontalFlip"]
    eval_tf = src.test.transform.transforms
    assert [type(t).__name__ for t in eval_tf[:3]] == ["ToRGB", "Resize", "CenterCrop"]
    assert eval_tf[1].size == [20] and eval_tf[2].size == (16, 16)
    assert eval_tf[1].interpolation.value == "bilinear"
    torch.manual_seed(0)
    crops = {src.train[0][0].numpy().tobytes() for _ in range(6)}
    assert len(crops) > 1
    bicubic = build_source(hp_for(roots, "food101", interpolation="bicubic"))
    assert bicubic.test.transform.transforms[1].interpolation.value == "bicubic"
    assert bicubic.train.transform.transforms[1].interpolation.value == "bicubic"
    no_aug = build_source(hp_for(roots, "food101", augment=False))
    assert torch.equal(no_aug.train[0][0], no_aug.train_eval[0][0])
    default = build_source(DataHparams(source="food101", root=roots["food101"][0]))
    assert default.info.input_shape == (3, 224, 224) and default.test[0][0].shape == (3, 224, 224)
    assert default.test.transform.transforms[1].size == [256]


def test_build_splits_holds_out_validation_from_merged_train(roots):
    splits = build_splits(hp_for(roots, "dtd", val_fraction=1 / 3))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 3, 6)


@pytest.mark.parametrize("name", TRANSFER_SOURCES)
def test_missing_root_and_missing_file_name_the_key_and_layout(roots, name, tmp_path):
    key = f"datasets.my{name}.root"
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root(name, str(tmp_path / "nowhere"), key=key)
    msg = str(err.value)
    assert key in msg and "does not exist" in msg and "fix:" in msg, msg
    assert LAYOUTS[name].splitlines()[1].strip() in msg, msg
    with pytest.raises(DatasetRootError, match=rf"datasets\.<{name}>\.root is not set"):
        build_source(DataHparams(source=name))
    root = tmp_path / "copy"
    shutil.copytree(roots[name][0], root)
    if name == "birdsnap":
        shutil.rmtree(root / "test")
        gone = "test/"
    else:
        gone = REQUIRED_FILES[name][-1]
        path = root / gone
        shutil.rmtree(path) if gone.endswith("/") else os.remove(path)
    with pytest.raises(DatasetRootError) as err:
        build_source(DataHparams(source=name, root=str(root), verify_checksums=False))
    assert f"datasets.<{name}>.root" in str(err.value) and gone.rstrip("/") in str(err.value)


@pytest.mark.parametrize(
    ("name", "edit", "words"),
    [
        ("aircraft", lambda r: open(r / "fgvc-aircraft-2013b/data/variants.txt", "w").close(), "KeyError"),
        ("sun397", lambda r: (r / "SUN397/ClassName.txt").write_text("/a/abbey\n"), "not in ClassName.txt"),
        ("dtd", lambda r: (r / "dtd/dtd/labels/val1.txt").write_text("banded/banded_0001.jpg\n"), "different classes"),
        ("birdsnap", lambda r: shutil.rmtree(r / "test" / "Bald_Eagle"), "test/ lacks 1 class folder"),
    ],
)
def test_malformed_roots_raise_root_errors(roots, tmp_path, name, edit, words):
    root = tmp_path / "copy"
    shutil.copytree(roots[name][0], root)
    edit(root)
    with pytest.raises(DatasetRootError, match=words) as err:
        build_source(DataHparams(source=name, root=str(root)))
    assert "expected layout" in str(err.value)


GARBAGE = b"<html><body>404 Not Found</body></html>\n" * 20  # what a failed download often leaves


@pytest.mark.parametrize("name", TRANSFER_SOURCES)
def test_garbage_images_are_reported_by_the_start_up_check(roots, tmp_path, name):
    root = tmp_path / "copy"
    shutil.copytree(roots[name][0], root)
    for f in root.rglob("*.jpg"):
        f.write_bytes(GARBAGE)
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root(name, str(root), key=f"datasets.my{name}.root")
    msg = str(err.value)
    assert f"datasets.my{name}.root" in msg and ".jpg" in msg and "fix:" in msg, msg


@pytest.mark.parametrize(
    "name,rel",
    [
        ("cars", "stanford_cars/devkit/cars_meta.mat"),
        ("flowers", "flowers-102/setid.mat"),
        ("food101", "food-101/meta/train.json"),
        ("aircraft", "fgvc-aircraft-2013b/data/variants.txt"),
    ],
)
def test_garbage_annotation_files_are_reported_by_the_start_up_check(roots, tmp_path, name, rel):
    root = tmp_path / "copy"
    shutil.copytree(roots[name][0], root)
    (root / rel).write_bytes(bytes(range(256)) * 4)  # binary garbage: no MATLAB header, no JSON, NUL bytes in text
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root(name, str(root), key=f"datasets.my{name}.root")
    assert f"datasets.my{name}.root" in str(err.value) and rel in str(err.value), str(err.value)


def test_an_image_folder_without_images_is_reported_by_the_start_up_check(roots, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(roots["flowers"][0], root)
    for f in (root / "flowers-102" / "jpg").iterdir():
        f.unlink()
    with pytest.raises(DatasetRootError, match="image files") as err:
        check_dataset_root("flowers", str(root), key="datasets.fl.root")
    assert "datasets.fl.root" in str(err.value) and "flowers-102/jpg" in str(err.value)


def test_flowers_md5_check_is_on_by_default(roots):
    with pytest.raises(DatasetRootError, match="md5") as err:
        build_source(DataHparams(source="flowers", root=roots["flowers"][0]))
    msg = str(err.value)
    assert "re-download" in msg and "verify_checksums: false" not in msg, msg  # never: turn the check off


def test_config_knows_the_new_sources():
    assert set(TRANSFER_SOURCES) <= set(list_sources()) and set(DATA_SOURCES) == set(list_sources())
    literal = typing.get_args(typing.get_type_hints(DataHparams)["source"])
    assert set(literal) == set(DATA_SOURCES)
    with open(SCHEMA) as f:
        dataset = yaml.safe_load(f)["$defs"]["dataset"]["properties"]
    assert set(dataset["source"]["enum"]) == set(DATA_SOURCES)
    assert dataset["interpolation"] == {
        **dataset["interpolation"],
        "enum": ["bilinear", "bicubic"],
        "default": "bilinear",
    }
    assert DataHparams.from_dict({"source": "pets", "interpolation": "bicubic"}).interpolation == "bicubic"
    with pytest.raises(HparamsError, match="interpolation"):
        DataHparams.from_dict({"source": "pets", "interpolation": "nearest"}, path="datasets.p")
    with pytest.raises(HparamsError, match="imagenet always resizes bilinearly"):
        DataHparams.from_dict({"source": "imagenet", "interpolation": "bicubic"}, path="datasets.i")
    with pytest.raises(HparamsError, match="channels is not an option of dtd"):
        DataHparams.from_dict({"source": "dtd", "channels": 3}, path="datasets.d")
