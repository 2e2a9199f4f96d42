"""Image-folder loaders: per-sample seeding without forking the RNG, workers, and the device-decode path."""

from __future__ import annotations

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
