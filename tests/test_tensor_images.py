"""Device-resident uint8 image datasets with batched augmentation (sparselab.data.tensor_images, issue 16 point 1).

The batched crop + flip must equal torchvision's per-image ops at the same offsets exactly, the
normalisation torchvision's to 1e-6, and a sample's view must depend only on (aug_seed, epoch,
sample): not on its batch, the batch size or the DDP shard.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakedata import write_fake_cifar10, write_fake_mnist
from torch import nn
from torch.utils.data import TensorDataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams
from sparselab.data import build_source, build_splits, make_loader
from sparselab.data.loaders import TensorBatchLoader, mix_seed, resident_tensors
from sparselab.data.seeds import mix_seeds
from sparselab.data.sources.cifar import cifar_transforms
from sparselab.data.tensor_images import ImageStore, ImageTransform, TensorImages, augmentation_params, crop_flip

CIFAR = ImageTransform(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), pad=4, flip=True)


def images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def identified(n: int, transform: ImageTransform = CIFAR) -> TensorImages:
    """n random images whose label is their index, so every batch says which samples it holds."""
    return TensorImages.from_tensors(images(n), torch.arange(n), transform)


def by_sample(loader) -> dict[int, torch.Tensor]:
    return {int(i): x for xs, ys in loader for x, i in zip(xs, ys)}


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("c10")
    write_fake_cifar10(root)
    return str(root)


def test_vectorised_hash_equals_mix_seed():
    last = np.array([0, 1, 2, 49_999, 2**40 + 7, 2**63 - 1], dtype=np.uint64)
    for prefix in [(0, 0), (7, 3), (2**62 + 11, 150), (-5, 2)]:
        got = mix_seeds(prefix, last)
        assert got.dtype == np.uint64
        assert [int(v) for v in got] == [mix_seed(*prefix, int(j)) for j in last]


@pytest.mark.parametrize("shape,pad", [((3, 32, 32), 4), ((2, 7, 11), 3), ((1, 5, 5), 0)])
def test_crop_flip_equals_torchvision_per_image_at_the_same_offsets(shape, pad):
    x = images(40, *shape, seed=1)
    params = augmentation_params(40, aug_seed=3, epoch=2, pad=pad, flip=True)
    got = crop_flip(x, params, pad)
    for img, (dy, dx, fl), out in zip(x, params.tolist(), got):
        ref = TF.crop(TF.pad(img, [pad]), dy, dx, shape[1], shape[2])  # RandomCrop(padding=pad): zero fill
        if fl:
            ref = TF.horizontal_flip(ref)
        assert torch.equal(out, ref)
    assert {tuple(p) for p in params[:, 2:].tolist()} == {(0,), (1,)}  # both flips were exercised


def test_normalisation_equals_to_dtype_and_normalize():
    ds = identified(16)
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR.mean, CIFAR.std)])
    batch = ds.transform_batch(ds.store.images, None)
    assert batch.dtype == torch.float32 and batch.shape == (16, 3, 32, 32)
    torch.testing.assert_close(batch, reference(ds.store.images), rtol=0, atol=1e-6)
    x, y = ds[5]
    assert y == 5 and type(y) is int and torch.equal(x, batch[5])  # __getitem__: the eval transform


def test_the_batched_path_is_cifar_transforms_at_its_own_draws():
    """The same map as the per-PIL-image transform: crop, flip and normalisation in that order."""
    from PIL import Image

    ds = identified(12)
    params = ds.augmentation(aug_seed=1, epoch=0)
    batch = ds.transform_batch(ds.store.images, params)
    _, eval_tf = cifar_transforms("cifar10", augment=True)
    for img, (dy, dx, fl), out in zip(ds.store.images, params.tolist(), batch):
        pil = Image.fromarray(img.permute(1, 2, 0).numpy())
        cropped = TF.crop(TF.pad(pil, [4]), dy, dx, 32, 32)
        ref = eval_tf(TF.horizontal_flip(cropped) if fl else cropped)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_mnist_resize_and_channels_equal_torchvision():
    x = images(6, c=1, h=28, w=28, seed=2)
    t = ImageTransform(mean=(0.1307,) * 3, std=(0.3081,) * 3, size=32, channels=3)
    ds = TensorImages.from_tensors(x, torch.arange(6), t)
    reference = v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            v2.Resize((32, 32), interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.RGB(),
            v2.Normalize(t.mean, t.std),
        ]
    )
    got = ds.transform_batch(x, None)
    assert got.shape == (6, 3, 32, 32)
    torch.testing.assert_close(got, torch.stack([reference(i) for i in x]), rtol=0, atol=1e-6)


def test_a_samples_view_does_not_depend_on_batch_composition_size_or_shard():
    ds = identified(45)
    views = []
    for batch_size in (1, 8, 45):
        loader = make_loader(ds, batch_size, shuffle=True, order_seed=batch_size, aug_seed=4)
        loader.set_epoch(3)
        views.append(by_sample(loader))
    assert all(v.keys() == set(range(45)) for v in views)
    assert all(torch.equal(views[0][i], v[i]) for v in views[1:] for i in range(45))
    one = make_loader(ds, 8, shuffle=True, order_seed=1, aug_seed=4)
    ranks = [make_loader(ds, 8, shuffle=True, order_seed=1, aug_seed=4, rank=r, world_size=3) for r in range(3)]
    for loader in (one, *ranks):
        loader.set_epoch(3)
    for (x, y), *shards in zip(one, *ranks):
        assert torch.equal(x, torch.cat([s[0] for s in shards])) and torch.equal(y, torch.cat([s[1] for s in shards]))
        assert torch.equal(x, torch.stack([views[0][int(i)] for i in y]))


def test_offsets_are_uniform_over_the_81_crops_and_flips_half():
    n = 81 * 200
    p = augmentation_params(n, aug_seed=11, epoch=0, pad=4, flip=True)
    cells = torch.bincount(p[:, 0] * 9 + p[:, 1], minlength=81)
    assert len(cells) == 81 and cells.min() > 140 and cells.max() < 260  # mean 200, sd ~14
    assert 0.48 < p[:, 2].float().mean().item() < 0.52
    assert torch.equal(augmentation_params(n, 11, 0, pad=4, flip=False)[:, :2], p[:, :2])
    assert not augmentation_params(n, 11, 0, pad=4, flip=False)[:, 2].any()


def test_same_seed_and_epoch_replay_another_epoch_or_seed_differs():
    ds = identified(30)

    def epoch(e: int, aug_seed: int = 2) -> list[torch.Tensor]:
        loader = make_loader(ds, 7, shuffle=True, order_seed=1, aug_seed=aug_seed)
        loader.set_epoch(e)
        return [x for x, _ in loader]

    first = epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(first, epoch(0)))
    p0, p1, q0 = ds.augmentation(2, 0), ds.augmentation(2, 1), ds.augmentation(3, 0)
    assert (p0 != p1).any(1).float().mean() > 0.8 and (p0 != q0).any(1).float().mean() > 0.8
    assert not all(torch.equal(a, b) for a, b in zip(first, epoch(1)))


def test_without_augmentation_the_loader_gives_the_eval_images():
    ds = identified(10, CIFAR.eval())
    assert ds.augmentation(1, 0) is None
    loader = make_loader(ds, 4, shuffle=False, aug_seed=1)
    assert torch.equal(torch.cat([x for x, _ in loader]), torch.stack([ds[i][0] for i in range(10)]))


def test_cifar_source_holdout_and_subset_keep_the_tensor_path(cifar_root):
    hp = DataHparams(
        source="cifar10", root=cifar_root, verify_checksums=False, val_fraction=0.2, val_seed=3, subset_fraction=0.5
    )
    src, splits = build_source(hp), build_splits(hp)
    for ds in (src.train, src.train_eval, src.test, splits.train, splits.train_eval, splits.val):
        assert isinstance(ds, TensorImages)
        assert isinstance(make_loader(ds, 4, shuffle=True), TensorBatchLoader)
    assert splits.train.store is splits.train_eval.store is splits.val.store  # one device copy for all three
    assert (len(splits.train), len(splits.val)) == (20, 10)
    assert set(splits.train.indices.tolist()).isdisjoint(splits.val.indices.tolist())
    k = 3  # sample k of a subset is the source's sample indices[k], numbered k for augmentation
    assert torch.equal(splits.val[k][0], src.train_eval[int(splits.val.indices[k])][0])
    loader = make_loader(splits.train, 20, shuffle=False, aug_seed=5)
    ((x, y),) = list(loader)
    rows = splits.train.indices
    expected = src.train.transform_batch(src.train.store.images[rows], augmentation_params(20, 5, 0, 4, True))
    assert torch.equal(x, expected) and torch.equal(y, src.train.store.labels[rows])


def test_mnist_source_is_a_tensor_dataset(tmp_path):
    write_fake_mnist(tmp_path)
    src = build_source(DataHparams(source="mnist", root=str(tmp_path), image_size=32, channels=3))
    assert isinstance(src.train, TensorImages) and src.train is src.train_eval and isinstance(src.test, TensorImages)
    x, _ = next(iter(make_loader(src.train, 8, shuffle=False)))
    assert x.shape == (8, 3, 32, 32) and torch.equal(x[2], src.train[2][0])


def test_tensors_are_moved_to_a_device_once_and_shared():
    store = ImageStore(images(4), torch.arange(4))
    meta = torch.device("meta")  # a device every machine has: a copy is made, nothing computed
    first = store.on(meta)
    assert first[0].device == meta and store.on("meta")[0] is first[0]
    assert store.on(None)[0] is store.images and store.on("cpu")[0] is store.images
    ds = TensorDataset(torch.zeros(3, 2), torch.arange(3))
    assert resident_tensors(ds, meta)[0] is resident_tensors(ds, meta)[0]
    assert resident_tensors(ds, "cpu")[0] is ds.tensors[0]
    digits = build_splits(DataHparams(val_fraction=0.1, subset_fraction=0.5))
    assert digits.train is digits.train_eval  # no augmentation: one object, so one device copy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches():
    ds = identified(50)
    cpu = make_loader(ds, 16, shuffle=True, order_seed=1, aug_seed=2, device="cpu")
    gpu = make_loader(ds, 16, shuffle=True, order_seed=1, aug_seed=2, device="cuda")
    for (a, y), (b, z) in zip(cpu, gpu):
        assert b.is_cuda and torch.equal(y, z.cpu())
        torch.testing.assert_close(a, b.cpu(), rtol=0, atol=1e-6)


def test_the_engine_asks_for_its_device_and_trains_cifar_through_the_tensor_path(cifar_root, tmp_path, monkeypatch):
    """A crash and resume on fake CIFAR (augmentation on) ends bitwise equal to an uninterrupted run."""
    from sparselab.models.spec import ArchSpec
    from sparselab.train import engine
    from sparselab.train.callbacks import Callback
    from sparselab.train.run import build_seeded

    asked: list[tuple[type, object]] = []
    real = engine.make_loader

    def spy(dataset, *args, **kw):
        loader = real(dataset, *args, **kw)
        asked.append((type(loader), kw.get("device")))
        return loader

    monkeypatch.setattr(engine, "make_loader", spy)
    splits = build_splits(DataHparams(source="cifar10", root=cifar_root, verify_checksums=False, val_fraction=0.2))
    hp = TrainHparams.from_dict({"epochs": 2, "batch_size": 16, "optimizer": {"lr": 0.05}})
    seeds, cpu = SeedHparams.for_replicate(0), ComputeHparams(device="cpu", progress="off")

    def net() -> nn.Module:
        return build_seeded(ArchSpec("lenet300_100", 10, (3, 32, 32), {"hidden": [16]}), seeds.init)

    class Crash(Callback):
        def on_step_end(self, ctx) -> None:
            if ctx.epoch == 2:
                raise KeyboardInterrupt("simulated kill")

    whole = engine.train(net(), splits, hp, seeds=seeds, compute=cpu)
    assert asked and all(kind is TensorBatchLoader and device == torch.device("cpu") for kind, device in asked)
    with pytest.raises(KeyboardInterrupt):
        engine.train(net(), splits, hp, seeds=seeds, compute=cpu, callbacks=[Crash()], state_dir=tmp_path)
    resumed = engine.train(net(), splits, hp, seeds=seeds, compute=cpu, state_dir=tmp_path)
    assert resumed.resumed_from_epoch == 1
    assert all(
        torch.equal(a, b) for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values())
    )
    assert all(np.isfinite(r["train_loss"]) for r in whole.history)
