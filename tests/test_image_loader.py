"""Image-folder loaders: per-sample seeding without forking the RNG, workers, and the device-decode path."""

from __future__ import annotations

import warnings

import pytest
import torch
from fakedata import write_fake_imagenet

from sparselab.config import DataHparams
from sparselab.data import build_source
from sparselab.data.loaders import PerSampleSeeded, make_loader, mix_seed


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory: pytest.TempPathFactory):
    """A fake ImageNet root (3 classes x 4 train JPEGs of 40x32) read with 16-pixel crops."""
    root = tmp_path_factory.mktemp("imagenet")
    write_fake_imagenet(root, classes=3, per_class=4, val_per_class=2, size=(40, 32))
    return build_source(DataHparams(source="imagenet", root=str(root), image_size=16, resize_size=20))


def forked_sample(dataset, index: int, seed: int):
    """The seeding every earlier release used: fork the global RNG, ``torch.manual_seed``, sample."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dataset[index]


def test_per_sample_seeds_give_the_images_forking_the_rng_gave(imagenet):
    seeded = PerSampleSeeded(imagenet.train)
    keys = [(i, mix_seed(3, 1, i)) for i in range(len(imagenet.train))]
    batch = seeded.__getitems__(keys)
    for (index, seed), (x, y) in zip(keys, batch):
        old_x, old_y = forked_sample(imagenet.train, index, seed)
        assert torch.equal(x, old_x) and y == old_y
        assert torch.equal(seeded[(index, seed)][0], old_x)
    assert len({x.numpy().tobytes() for x, _ in batch}) > 1


def epoch_batches(dataset, num_workers: int, epoch: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = make_loader(dataset, 5, shuffle=True, order_seed=7, aug_seed=8, num_workers=num_workers)
    loader.set_epoch(epoch)
    return list(loader)


def test_loader_batches_equal_the_forked_samples_with_and_without_workers(imagenet):
    in_process, workers = epoch_batches(imagenet.train, 0), epoch_batches(imagenet.train, 2)
    assert len(in_process) == len(workers) == 3
    for (x0, y0), (x2, y2) in zip(in_process, workers):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    from sparselab.data.loaders import epoch_permutation

    first = epoch_permutation(len(imagenet.train), 7, 1)[:5].tolist()
    expected = torch.stack([forked_sample(imagenet.train, i, mix_seed(8, 1, i))[0] for i in first])
    assert torch.equal(in_process[0][0], expected)


def test_seeding_in_the_main_process_leaves_the_global_rng_alone(imagenet):
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    PerSampleSeeded(imagenet.train).__getitems__([(0, 5), (3, 6)])
    PerSampleSeeded(imagenet.train)[(1, 7)]
    assert torch.equal(torch.rand(4), expected)


# --- compute.num_workers ----------------------------------------------------------------------------------------


def test_auto_workers_leave_one_cpu_per_process_and_respect_threads_and_the_cap():
    from sparselab.data.workers import MAX_AUTO_WORKERS, auto_workers

    assert auto_workers(1) == 0 and auto_workers(2) == 1 and auto_workers(16) == 15
    assert auto_workers(128) == MAX_AUTO_WORKERS == 16
    assert auto_workers(16, processes=2) == 7 and auto_workers(2, processes=4) == 0
    assert auto_workers(64, threads=1) == 0 and auto_workers(64, threads=4) == 3  # Snakemake's threads per job


def test_resolve_num_workers_keeps_an_explicit_count_and_resolves_auto_from_this_process(monkeypatch):
    from sparselab.data import workers

    assert workers.resolve_num_workers(0) == 0 and workers.resolve_num_workers(5, processes=4) == 5
    monkeypatch.setattr(workers, "available_cpus", lambda: 12)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 12)
    assert workers.resolve_num_workers("auto") == 11 and workers.resolve_num_workers("auto", processes=2) == 5
    with pytest.raises(ValueError, match="num_workers"):
        workers.resolve_num_workers(-1)


def test_compute_num_workers_defaults_to_auto_and_accepts_counts():
    from sparselab.config import ComputeHparams, HparamsError

    assert ComputeHparams().num_workers == "auto" and ComputeHparams().decode == "workers"
    assert ComputeHparams.from_dict({"num_workers": 3, "decode": "device"}).num_workers == 3
    for bad in (-1, "many", 1.5, True):
        with pytest.raises(HparamsError, match="num_workers"):
            ComputeHparams.from_dict({"num_workers": bad}, path="compute")


def test_in_memory_tensors_never_start_workers():
    from torch.utils.data import TensorDataset

    from sparselab.data.loaders import TensorBatchLoader

    data = TensorDataset(torch.zeros(6, 2), torch.zeros(6, dtype=torch.long))
    assert isinstance(make_loader(data, 2, shuffle=True, num_workers="auto"), TensorBatchLoader)
    assert isinstance(make_loader(data, 2, shuffle=True, decode_device=torch.device("cpu")), TensorBatchLoader)


def test_auto_resolves_when_the_image_loader_is_built(imagenet, monkeypatch):
    from sparselab.data import workers

    monkeypatch.setattr(workers, "available_cpus", lambda: 3)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    loader = make_loader(imagenet.train, 4, shuffle=True, num_workers="auto")
    assert loader.loader.num_workers == 2  # type: ignore[attr-defined]


# --- decoding on the training device (run here on the CPU) ------------------------------------------------------

SIZE, RESIZE = 24, 28


def coded_image(width: int = 64, height: int = 48, shift: int = 0):
    """A smooth image whose red/green channels encode the column/row: crops and flips show in every pixel."""
    import numpy as np
    from PIL import Image

    x, y = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (shift + (x + y) * 2) % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two ImageFolder roots of position-coded images: ``png`` (lossless) and ``mixed`` (JPEGs and PNGs)."""
    base = tmp_path_factory.mktemp("coded")
    for kind in ("png", "mixed"):
        for k, cls in enumerate(("a", "b")):
            (base / kind / cls).mkdir(parents=True)
            for i in range(4):
                image = coded_image(64 + 8 * i, 48 - 4 * i, shift=40 * k + i)
                if kind == "mixed" and i % 2 == 0:
                    image.save(base / kind / cls / f"{i}.jpg", format="JPEG", quality=95)
                else:
                    image.save(base / kind / cls / f"{i}.png")
    return {kind: str(base / kind) for kind in ("png", "mixed")}


def folder(root: str, transforms: str, augment: bool = True):
    from torchvision.datasets import ImageFolder

    from sparselab.data.sources.imagenet import imagenet_transforms
    from sparselab.data.sources.transfer import transfer_transforms

    make = imagenet_transforms if transforms == "imagenet" else transfer_transforms
    return ImageFolder(root, transform=make(SIZE, RESIZE, augment)[0])


def both_paths(dataset, epoch: int = 3, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(PIL-path images, device-path images on the CPU, device-path labels) of one unshuffled epoch."""
    n = len(dataset)
    pil = torch.stack(
        [x for x, _ in PerSampleSeeded(dataset).__getitems__([(i, mix_seed(9, epoch, i)) for i in range(n)])]
    )
    loader = make_loader(
        dataset, n, shuffle=False, aug_seed=9, num_workers=num_workers, decode_device=torch.device("cpu")
    )
    loader.set_epoch(epoch)
    ((x, y),) = list(loader)
    return pil, x, y


def test_device_decode_is_the_pil_path_on_lossless_files_with_imagenet_transforms(folders):
    from sparselab.data.device_decode import DeviceDecodeLoader

    dataset = folder(folders["png"], "imagenet")
    loader = make_loader(dataset, 4, shuffle=True, decode_device=torch.device("cpu"))
    assert isinstance(loader, DeviceDecodeLoader) and len(loader) == 2
    pil, x, y = both_paths(dataset)
    assert x.dtype == torch.float32 and x.shape == (8, 3, SIZE, SIZE)
    assert torch.equal(x, pil)  # same decoded pixels, same crop boxes and flips, same tensor ops
    assert y.tolist() == [t for _, t in dataset.samples]
    assert not torch.equal(both_paths(dataset, epoch=4)[1], x)  # another epoch: other crops


@pytest.mark.parametrize("transforms", ["imagenet", "transfer"])
@pytest.mark.parametrize("augment", [True, False])
def test_device_decode_is_close_to_the_pil_path_on_jpegs_and_pil_resampling(folders, transforms, augment):
    dataset = folder(folders["mixed"], transforms, augment)
    pil, x, y = both_paths(dataset)
    assert y.tolist() == [t for _, t in dataset.samples]
    err = (x - pil).abs().mean(dim=(1, 2, 3))
    # On the CPU both decoders are libjpeg-turbo; PIL's and torch's antialiased resampling differ slightly.
    assert err.max() < 0.01, err
    # Any other crop or flip is far off: the positions are coded in the pixels.
    other = pil.flip(-1) if not augment else both_paths(dataset, epoch=5)[0]
    assert (x - other).abs().mean(dim=(1, 2, 3)).min() > 0.05


def test_device_decode_with_workers_equals_without(folders):
    dataset = folder(folders["mixed"], "transfer")
    _, x0, y0 = both_paths(dataset)
    _, x1, y1 = both_paths(dataset, num_workers=1)
    assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_decode_images_keeps_the_order_of_mixed_formats(folders):
    from pathlib import Path

    from torchvision.io import ImageReadMode, decode_image

    from sparselab.data.device_decode import decode_images, file_bytes, is_jpeg

    files = sorted(str(p) for p in Path(folders["mixed"]).rglob("*.*"))
    data = [file_bytes(f) for f in files]
    assert [is_jpeg(d) for d in data] == [f.endswith(".jpg") for f in files]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecates its decoders
        for d, image in zip(data, decode_images(data, torch.device("cpu"))):
            assert image.dtype == torch.uint8 and torch.equal(image, decode_image(d, mode=ImageReadMode.RGB))


def test_a_dataset_without_files_keeps_the_worker_path():
    from torch.utils.data import Dataset

    from sparselab.data.loaders import SamplerLoader

    class Generated(Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int):
            return torch.rand(2), i

    assert isinstance(make_loader(Generated(), 2, shuffle=False, decode_device=torch.device("cpu")), SamplerLoader)


def test_training_with_device_decode_equals_the_worker_path_on_lossless_files(folders, monkeypatch):
    from sparselab.config import ComputeHparams, SeedHparams, TrainHparams
    from sparselab.data import DatasetInfo, DatasetSplits, device_decode
    from sparselab.models.spec import ArchSpec
    from sparselab.train.engine import train
    from sparselab.train.run import build_seeded

    train_ds, eval_ds = folder(folders["png"], "imagenet"), folder(folders["png"], "imagenet", augment=False)
    info = DatasetInfo("coded", 2, (3, SIZE, SIZE), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    splits = DatasetSplits(info=info, train=train_ds, train_eval=eval_ds, val=None, test=eval_ds)
    hp = TrainHparams.from_dict({"epochs": 2, "batch_size": 3, "optimizer": {"lr": 0.05}})
    spec = ArchSpec("lenet300_100", 2, (3, SIZE, SIZE), {"hidden": [8]})
    decoded, decode = [], device_decode.decode_images
    monkeypatch.setattr(
        device_decode, "decode_images", lambda data, device: decoded.append(device) or decode(data, device)
    )
    results = [
        train(
            build_seeded(spec, 0),
            splits,
            hp,
            seeds=SeedHparams.for_replicate(0),
            compute=ComputeHparams(device="cpu", progress="lines", num_workers=0, decode=decode),
        )
        for decode in ("workers", "device")
    ]
    assert decoded == [torch.device("cpu")] * 2 * (3 + 1)  # the device path ran: 2 epochs of 3 train + 1 test batch
    a, b = (r.model.state_dict() for r in results)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["test_loss"] for h in results[0].history] == [h["test_loss"] for h in results[1].history]


@pytest.fixture(scope="module")
def transfer_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import fakedata

    from sparselab.config.bundles import TRANSFER_SOURCES

    base = tmp_path_factory.mktemp("transfer")
    for name in TRANSFER_SOURCES:
        getattr(fakedata, f"write_fake_{name}")(base / name)
    return {name: str(base / name) for name in TRANSFER_SOURCES}


def test_every_transfer_source_lists_its_files_and_decodes_on_the_device(transfer_roots):
    from sparselab.data.image_files import image_files

    for name, root in transfer_roots.items():
        src = build_source(DataHparams(source=name, root=root, image_size=16, resize_size=20, verify_checksums=False))
        for split in (src.train, src.test):
            files = image_files(split)
            assert files is not None and len(files) == len(split), name
            some = sorted({0, len(split) // 2, len(split) - 1})
            assert [files.targets[i] for i in some] == [split[i][1] for i in some], name
        # Evaluation images (deterministic) through both paths, greyscale Caltech files included.
        pil, x, _ = both_paths(src.test)
        assert (x - pil).abs().mean(dim=(1, 2, 3)).max() < 0.05, name
