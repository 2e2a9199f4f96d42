"""Real-dataset sources on tiny fake data in the real on-disk formats, root checks, and digits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakedata import (
    fake_pixel,
    fake_wnids,
    write_fake_cifar10,
    write_fake_cifar100,
    write_fake_imagenet,
    write_fake_mnist,
)

from sparselab.config import DataHparams
from sparselab.config.roots import LAYOUTS, DatasetRootError, check_dataset_root
from sparselab.data import build_source, build_splits
from sparselab.data.loaders import PerSampleSeeded, make_loader
from sparselab.data.tensor_images import TensorImages

CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, dict[str, list[int]]]]:
    """One fake root per source, written once: {source: (root, labels written)}."""
    base = tmp_path_factory.mktemp("fake")
    out = {}
    for source, write in (
        ("mnist", write_fake_mnist),
        ("cifar10", write_fake_cifar10),
        ("cifar100", write_fake_cifar100),
        ("imagenet", write_fake_imagenet),
    ):
        root = base / source
        out[source] = (str(root), write(root))
    return out


def hp_for(roots, source: str, **kw) -> DataHparams:
    checks = {"verify_checksums": False} if source.startswith("cifar") else {}
    return DataHparams(source=source, root=roots[source][0], **{**checks, **kw})


def normalised(value: int, mean: float, std: float) -> float:
    return (value / 255.0 - mean) / std


# --- MNIST ---------------------------------------------------------------------------------------------------


def test_mnist_lengths_labels_and_known_pixel(roots):
    labels = roots["mnist"][1]
    src = build_source(hp_for(roots, "mnist"))  # verify_checksums on: torchvision never md5s raw MNIST
    assert (len(src.train), len(src.train_eval), len(src.test)) == (30, 30, 10)
    assert src.info.num_classes == 10 and src.info.input_shape == (1, 28, 28)
    assert [src.train[i][1] for i in range(30)] == labels["train"]
    assert [src.test[i][1] for i in range(10)] == labels["test"]
    x, y = src.test[2]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and type(x) is torch.Tensor
    # Row 5, column 3: catches transposed or flipped images as well as wrong normalisation.
    assert x[0, 5, 3].item() == pytest.approx(normalised(fake_pixel(y, 10, 0, 5, 3), 0.1307, 0.3081), abs=1e-5)
    assert torch.equal(src.train[4][0], src.train_eval[4][0])  # no augmentation


def test_mnist_resize_and_three_channels(roots):
    src = build_source(hp_for(roots, "mnist", image_size=32, channels=3))
    x, _ = src.train[0]
    assert src.info.input_shape == (3, 32, 32) == tuple(x.shape)
    assert src.info.mean == (0.1307,) * 3 and src.info.std == (0.3081,) * 3
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])


# --- CIFAR ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source,n_classes,stats", [("cifar10", 10, CIFAR10_STATS), ("cifar100", 100, CIFAR100_STATS)])
def test_cifar_lengths_labels_and_normalisation(roots, source, n_classes, stats):
    labels = roots[source][1]
    src = build_source(hp_for(roots, source))
    assert src.info == type(src.info)(
        name=source, num_classes=n_classes, input_shape=(3, 32, 32), mean=stats[0], std=stats[1]
    )
    assert (len(src.train), len(src.train_eval), len(src.test)) == (50, 50, 20)
    assert [src.train_eval[i][1] for i in range(50)] == labels["train"]
    assert [src.test[i][1] for i in range(20)] == labels["test"]
    x, y = src.test[7]
    assert x.shape == (3, 32, 32) and type(x) is torch.Tensor
    for c in range(3):
        expected = normalised(fake_pixel(y, n_classes, c, 9, 4), stats[0][c], stats[1][c])
        assert x[c, 9, 4].item() == pytest.approx(expected, abs=1e-5)
    # Eval transform is deterministic and class-dependent: brighter classes have larger means.
    by_class = {src.train_eval[i][1]: src.train_eval[i][0].mean().item() for i in range(min(n_classes, 50))}
    ordered = [by_class[k] for k in sorted(by_class)]
    assert ordered == sorted(ordered)


def test_cifar_augmentation_is_seeded_per_sample(roots):
    """CIFAR is a batched tensor dataset: each sample's crop + flip is drawn from (aug_seed, epoch, sample)."""
    src = build_source(hp_for(roots, "cifar10"))
    assert isinstance(src.train, TensorImages) and src.train.store is src.train_eval.store

    def view(i: int, aug_seed: int) -> torch.Tensor:
        loader = make_loader(src.train, 50, shuffle=False, aug_seed=aug_seed)
        return next(iter(loader))[0][i]

    assert torch.equal(view(3, 1234), view(3, 1234))
    views = [view(3, s) for s in range(8)]
    assert len({v.numpy().tobytes() for v in views}) > 1  # different seeds: different crops/flips
    assert not all(torch.equal(v, src.train_eval[3][0]) for v in views)
    # The global RNG is neither used nor touched by an augmented epoch.
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    view(3, 99)
    assert torch.equal(torch.rand(1), before)


def test_cifar_loader_replays_the_same_batches(roots):
    src = build_source(hp_for(roots, "cifar10"))

    def epoch(e: int) -> list[torch.Tensor]:
        loader = make_loader(src.train, 16, shuffle=True, order_seed=1, aug_seed=2)
        loader.set_epoch(e)
        return [x for x, _ in loader]

    first, again, other = epoch(0), epoch(0), epoch(1)
    assert all(torch.equal(p, q) for p, q in zip(first, again))
    assert not all(torch.equal(p, q) for p, q in zip(first, other))


def test_cifar_without_augmentation_train_equals_train_eval(roots):
    src = build_source(hp_for(roots, "cifar100", augment=False))
    ((x, _),) = list(make_loader(src.train, 50, shuffle=False, aug_seed=5))
    for i in (0, 17, 49):
        assert torch.equal(x[i], src.train_eval[i][0])


def test_cifar_verify_checksums_rejects_fake_files(roots):
    with pytest.raises(DatasetRootError) as err:
        build_source(hp_for(roots, "cifar10", verify_checksums=True))
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "re-download" in msg.lower(), msg
    assert "verify_checksums: false" not in msg and "if you trust" not in msg, msg  # never: turn the check off


def test_build_splits_holds_out_disjoint_validation(roots):
    hp = hp_for(roots, "cifar10", val_fraction=0.2, val_seed=3)
    splits = build_splits(hp)
    train_idx, val_idx = set(splits.train.indices.tolist()), set(splits.val.indices.tolist())  # store rows
    assert len(val_idx) == 10 and len(train_idx) == 40
    assert train_idx.isdisjoint(val_idx) and train_idx | val_idx == set(range(50))
    assert torch.equal(splits.train_eval.indices, splits.train.indices)
    # Validation samples use the eval transform: deterministic, equal to train_eval's.
    src = build_source(hp)
    j = int(splits.val.indices[0])
    assert torch.equal(splits.val[0][0], src.train_eval[j][0])
    assert torch.equal(build_splits(hp).val.indices, splits.val.indices)
    subset = build_splits(hp_for(roots, "cifar10", val_fraction=0.2, val_seed=3, subset_fraction=0.5))
    assert set(subset.train.indices.tolist()) <= train_idx and len(subset.train) == 20


# --- ImageNet ------------------------------------------------------------------------------------------------


def test_imagenet_folders(roots):
    root, labels = roots["imagenet"]
    src = build_source(hp_for(roots, "imagenet", image_size=16, resize_size=20))
    assert src.info.num_classes == 3 and src.info.input_shape == (3, 16, 16)
    assert src.info.mean == (0.485, 0.456, 0.406) and src.info.std == (0.229, 0.224, 0.225)
    assert (len(src.train), len(src.train_eval), len(src.test)) == (12, 12, 6)
    assert src.train.classes == src.test.classes == fake_wnids(3)
    assert [y for _, y in src.test] == labels["val"]
    assert [src.train_eval[i][1] for i in range(12)] == labels["train"]
    means = [src.test[i][0].mean().item() for i in (0, 2, 4)]  # one val image per class
    assert means[0] < means[1] < means[2]
    x = PerSampleSeeded(src.train)[(5, 7)][0]
    assert x.shape == (3, 16, 16) and torch.equal(x, PerSampleSeeded(src.train)[(5, 7)][0])
    crops = {PerSampleSeeded(src.train)[(5, s)][0].numpy().tobytes() for s in range(6)}
    assert len(crops) > 1
    assert torch.equal(src.train_eval[5][0], src.train_eval[5][0])
    no_aug = build_source(hp_for(roots, "imagenet", image_size=16, resize_size=20, augment=False))
    assert torch.equal(PerSampleSeeded(no_aug.train)[(5, 7)][0], no_aug.train_eval[5][0])


def test_imagenet_resize_smaller_than_crop_is_rejected(roots):
    with pytest.raises(ValueError, match="resize_size"):
        build_source(hp_for(roots, "imagenet", image_size=32, resize_size=20))


# --- root checks ---------------------------------------------------------------------------------------------


def assert_root_message(msg: str, key: str, source: str, missing: str) -> None:
    assert key in msg, msg
    assert LAYOUTS[source].splitlines()[1].strip() in msg, msg  # the expected tree is shown
    assert "missing:" in msg and missing in msg, msg
    assert "fix:" in msg and ("download=True" in msg or "ImageNet(" in msg), msg


@pytest.mark.parametrize("source", ["mnist", "cifar10", "cifar100", "imagenet"])
def test_unset_root_names_the_key(source):
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root(source, None, key=f"datasets.my{source}.root")
    assert_root_message(str(err.value), f"datasets.my{source}.root", source, "root directory")
    assert "is not set" in str(err.value)
    with pytest.raises(DatasetRootError, match=rf"datasets\.<{source}>\.root"):
        build_source(DataHparams(source=source))


def test_missing_root(tmp_path):
    gone = str(tmp_path / "nowhere")
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root("cifar10", gone, key="datasets.cifar10.root")
    assert_root_message(str(err.value), "datasets.cifar10.root", "cifar10", f"{gone} does not exist")


def test_cifar10_without_test_batch(roots, tmp_path):
    root = tmp_path / "c10"
    shutil.copytree(roots["cifar10"][0], root)
    os.remove(root / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root("cifar10", str(root), key="datasets.cifar10.root")
    assert_root_message(str(err.value), "datasets.cifar10.root", "cifar10", "cifar-10-batches-py/test_batch")
    assert "data_batch_1" not in str(err.value).split("missing:")[1].split("\n")[0]
    with pytest.raises(DatasetRootError, match="test_batch"):
        build_source(DataHparams(source="cifar10", root=str(root), verify_checksums=False))


def test_mnist_missing_labels_file(roots, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(roots["mnist"][0], root)
    os.remove(root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte")
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root("mnist", str(root), key="datasets.mnist.root")
    assert_root_message(str(err.value), "datasets.mnist.root", "mnist", "MNIST/raw/t10k-labels-idx1-ubyte")


def test_imagenet_val_classes_must_match_train(tmp_path):
    write_fake_imagenet(tmp_path, classes=3, per_class=1, val_per_class=1, size=(8, 8))
    last = fake_wnids(3)[-1]
    shutil.rmtree(tmp_path / "val" / last)
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root("imagenet", str(tmp_path), key="datasets.imagenet.root")
    assert_root_message(
        str(err.value), "datasets.imagenet.root", "imagenet", f"val/ lacks 1 class folder(s) of train/: {last}"
    )


@pytest.mark.parametrize("damage", ["no_val", "no_classes", "flat_val", "no_images"])
def test_imagenet_malformed(tmp_path, damage):
    write_fake_imagenet(tmp_path, classes=2, per_class=1, val_per_class=1, size=(8, 8))
    first = tmp_path / "train" / fake_wnids(2)[0]
    if damage == "no_val":
        shutil.rmtree(tmp_path / "val")
        missing = f"{tmp_path / 'val'}/"
    elif damage == "no_classes":
        shutil.rmtree(tmp_path / "train")
        (tmp_path / "train").mkdir()
        missing = f"class folders (<wnid>/) in {tmp_path / 'train'}/"
    elif damage == "flat_val":  # the validation tar extracts flat; it must be sorted into classes
        for f in list((tmp_path / "val").glob("*/*.JPEG")):
            f.rename(tmp_path / "val" / f.name)
            f.parent.rmdir()
        missing = f"class folders (<wnid>/) in {tmp_path / 'val'}/ (images lie directly in it"
    else:
        for f in first.iterdir():
            f.rename(f.with_suffix(".txt"))
        missing = f"image files (.jpeg, .jpg, .png, any case) in {first}/"
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root("imagenet", str(tmp_path), key="datasets.imagenet.root")
    assert_root_message(str(err.value), "datasets.imagenet.root", "imagenet", missing)


def test_imagenet_empty_class_beyond_the_first_is_reported_by_the_full_scan(tmp_path):
    write_fake_imagenet(tmp_path, classes=2, per_class=1, val_per_class=1, size=(8, 8))
    second = tmp_path / "train" / fake_wnids(2)[1]
    for f in second.iterdir():
        f.unlink()
    check_dataset_root("imagenet", str(tmp_path), key="datasets.imagenet.root")  # cheap check: passes
    with pytest.raises(DatasetRootError, match=fake_wnids(2)[1]):
        build_source(DataHparams(source="imagenet", root=str(tmp_path)))


# --- cheap structural checks: garbage in a root is caught at start-up, naming the config key ---------------

GARBAGE = b"<html><body>404 Not Found</body></html>\n" * 20  # what a failed download often leaves


def copied(roots, source: str, dest: Path) -> Path:
    shutil.copytree(roots[source][0], dest)
    return dest


def assert_reported(source: str, root: Path, key: str, words: str, **kw) -> str:
    with pytest.raises(DatasetRootError) as err:
        check_dataset_root(source, str(root), key=key, **kw)
    msg = str(err.value)
    assert key in msg and words in msg, msg
    assert "fix:" in msg and "expected layout" in msg, msg
    return msg


@pytest.mark.parametrize(
    "source,rel",
    [
        ("cifar10", "cifar-10-batches-py/data_batch_3"),
        ("cifar10", "cifar-10-batches-py/batches.meta"),
        ("cifar100", "cifar-100-python/test"),
    ],
)
@pytest.mark.parametrize("content", [GARBAGE, b""], ids=["garbage", "empty"])
def test_a_cifar_file_that_is_not_a_pickled_dict_is_reported(roots, tmp_path, source, rel, content):
    root = copied(roots, source, tmp_path / "c")
    (root / rel).write_bytes(content)
    assert_reported(source, root, "datasets.mycifar.root", rel, verify_checksums=False)


def test_with_checksums_cifar_files_must_have_the_official_release_sizes(roots):
    root = roots["cifar10"][0]
    check_dataset_root("cifar10", root, key="datasets.c10.root", verify_checksums=False)  # the fakes are fine
    msg = assert_reported(
        "cifar10", Path(root), "datasets.c10.root", "cifar-10-batches-py/data_batch_1", verify_checksums=True
    )
    assert "30,720,000" in msg  # 10,000 images of 3,072 bytes at least


@pytest.mark.parametrize("damage", ["garbage", "truncated", "counts", "image_size"])
def test_malformed_mnist_files_are_reported(roots, tmp_path, damage):
    root = copied(roots, "mnist", tmp_path / "m")
    raw = root / "MNIST" / "raw"
    images = raw / "train-images-idx3-ubyte"
    if damage == "garbage":
        images.write_bytes(GARBAGE)
        rel = "train-images-idx3-ubyte"
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
        rel = "train-images-idx3-ubyte"
    elif damage == "counts":  # 10 test images, 9 labels
        labels = raw / "t10k-labels-idx1-ubyte"
        data = labels.read_bytes()
        labels.write_bytes(data[:4] + (9).to_bytes(4, "big") + data[8:-1])
        rel = "t10k-labels-idx1-ubyte"
    else:  # 30 images of 32x24: a valid idx file, but not 28x28 digits
        (raw / "train-images-idx3-ubyte").write_bytes(
            (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (30, 32, 24)) + bytes(30 * 32 * 24)
        )
        rel = "train-images-idx3-ubyte"
    assert_reported("mnist", root, "datasets.digitsnist.root", rel)


def test_the_fake_roots_pass_the_structural_checks(roots):
    for source, (root, _) in roots.items():
        check_dataset_root(source, root, key=f"datasets.{source}.root", verify_checksums=source == "mnist")


def test_imagenet_images_that_are_not_jpeg_or_png_are_reported(tmp_path):
    write_fake_imagenet(tmp_path, classes=2, per_class=2, val_per_class=1, size=(8, 8))
    for f in tmp_path.glob("*/*/*.JPEG"):
        f.write_bytes(GARBAGE)
    first = tmp_path / "train" / fake_wnids(2)[0] / f"{fake_wnids(2)[0]}_0.JPEG"
    assert_reported("imagenet", tmp_path, "datasets.inet.root", str(first))


def test_a_png_image_passes(tmp_path):
    from PIL import Image

    write_fake_imagenet(tmp_path, classes=2, per_class=1, val_per_class=1, size=(8, 8))
    for f in tmp_path.glob("*/*/*.JPEG"):
        Image.open(f).save(f.with_suffix(".png"), format="PNG")
        f.unlink()
    check_dataset_root("imagenet", str(tmp_path), key="datasets.inet.root")


def workflow_with(dataset: dict) -> dict:
    from conftest import tiny_config

    config = tiny_config()
    config["datasets"]["mycifar"] = dataset
    config["models"]["resnet"] = {"arch": "cifar_resnet20"}
    config["oneshot"]["experiments"].append(
        {
            "dataset": "mycifar",
            "model": "resnet",
            "train_recipe": "dense",
            "finetune_recipe": "finetune",
            "sparsities": [0.5],
        }
    )
    return config


def test_start_up_check_names_the_users_config_key(roots, tmp_path):
    from sparselab.workflow import build_workflow_config, dataset_root_problems

    root = copied(roots, "cifar10", tmp_path / "c")
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(GARBAGE)
    wf = build_workflow_config(workflow_with({"source": "cifar10", "root": str(root), "verify_checksums": False}))
    (problem,) = dataset_root_problems(wf)
    assert "datasets.mycifar.root" in problem and "data_batch_2" in problem, problem
    # verify_checksums defaults to true: the tiny fakes are not the official release's sizes
    wf = build_workflow_config(workflow_with({"source": "cifar10", "root": roots["cifar10"][0]}))
    (problem,) = dataset_root_problems(wf)
    assert "datasets.mycifar.root" in problem and "data_batch_1" in problem, problem


def test_errors_at_job_start_name_the_users_config_key(tmp_path):
    """What only the full read finds (an empty class folder beyond the first) names the entry, not the source."""
    from sparselab.workflow import build_workflow_config

    write_fake_imagenet(tmp_path, classes=2, per_class=1, val_per_class=1, size=(8, 8))
    for f in (tmp_path / "train" / fake_wnids(2)[1]).iterdir():
        f.unlink()
    config = workflow_with({"source": "imagenet", "root": str(tmp_path), "image_size": 8, "resize_size": 8})
    wf = build_workflow_config(config)
    with pytest.raises(DatasetRootError) as err:
        build_source(wf.datasets["mycifar"])
    assert "datasets.mycifar.root" in str(err.value) and "datasets.<imagenet>" not in str(err.value), str(err.value)


def test_digits_needs_no_root():
    check_dataset_root("digits", None, key="datasets.digits.root")


def test_roots_module_imports_only_the_standard_library():
    code = "import sys, sparselab.config.roots; bad = {'torch', 'torchvision', 'numpy'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- digits --------------------------------------------------------------------------------------------------


def test_digits_stratified_split_is_seeded_and_proportional():
    src = build_source(DataHparams(source="digits", test_fraction=0.25, split_seed=4))
    train_y, test_y = src.train.tensors[1], src.test.tensors[1]
    assert len(train_y) + len(test_y) == 1797
    fractions = torch.bincount(test_y, minlength=10) / torch.bincount(torch.cat([train_y, test_y]), minlength=10)
    assert torch.all((fractions - 0.25).abs() < 0.02)
    again = build_source(DataHparams(source="digits", test_fraction=0.25, split_seed=4))
    other = build_source(DataHparams(source="digits", test_fraction=0.25, split_seed=5))
    assert torch.equal(again.test.tensors[0], src.test.tensors[0])
    assert not torch.equal(other.test.tensors[0], src.test.tensors[0])


def test_digits_image_size_and_channels_change_input_shape():
    src = build_source(DataHparams(source="digits", image_size=16, channels=3))
    assert src.info.input_shape == (3, 16, 16) == tuple(src.train.tensors[0].shape[1:])
    assert build_source(DataHparams(source="digits")).info.input_shape == (1, 8, 8)


def test_cifar_half_normalisation_maps_pixels_to_minus_one_one(roots):
    # Lubana & Dick normalise with mean = std = 0.5 per channel: x = 2 * pixel / 255 - 1
    src = build_source(hp_for(roots, "cifar10", normalize="half"))
    assert src.info.mean == (0.5, 0.5, 0.5) and src.info.std == (0.5, 0.5, 0.5)
    x, y = src.test[7]
    assert x[0, 9, 4].item() == pytest.approx(2 * fake_pixel(y, 10, 0, 9, 4) / 255 - 1, abs=1e-5)
    with pytest.raises(Exception, match="cifar10/cifar100 at 32 px only"):
        DataHparams.from_dict({"source": "digits", "normalize": "half"}, path="datasets.digits")


def test_cifar_with_the_transfer_preprocessing_is_upsampled_with_imagenet_statistics(roots):
    src = build_source(hp_for(roots, "cifar10", image_size=48, interpolation="bicubic", normalize="imagenet"))
    assert src.info.input_shape == (3, 48, 48) and src.info.mean == (0.485, 0.456, 0.406)
    x, _ = src.test[0]
    assert x.shape == (3, 48, 48)
    x_train, _ = src.train[0]
    assert x_train.shape == (3, 48, 48)
