"""Seeded splits and subsets, reproducible loaders, and the bundled digits data."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from sparselab.config import DataHparams
from sparselab.data import build_splits, holdout_indices, make_loader, subset_indices
from sparselab.data.loaders import mix_seed
from sparselab.data.sources.digits import load_digits_tensors


def test_digits_file_read_equals_scikit_learn():
    from sklearn.datasets import load_digits

    images, labels = load_digits_tensors()
    ref = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.max() == 1.0
    assert torch.equal(images.view(1797, 64) * 16, torch.as_tensor(ref.data, dtype=torch.float32))
    assert torch.equal(labels, torch.as_tensor(ref.target))


def test_holdout_is_disjoint_complete_sorted_and_seeded():
    kept, out = holdout_indices(100, 0.2, seed=3)
    assert len(out) == 20 and len(kept) == 80
    assert sorted(torch.cat([kept, out]).tolist()) == list(range(100))
    assert torch.equal(kept, kept.sort().values)
    assert torch.equal(out, holdout_indices(100, 0.2, seed=3)[1])
    assert not torch.equal(out, holdout_indices(100, 0.2, seed=4)[1])


def test_subsets_have_the_requested_size_and_are_seeded():
    a = subset_indices(1000, 1 / 32, seed=0)
    assert len(a) == 32 and len(set(a.tolist())) == 32
    assert torch.equal(a, subset_indices(1000, 1 / 32, seed=0))
    assert not torch.equal(a, subset_indices(1000, 1 / 32, seed=1))
    assert len(subset_indices(10, 1.0, seed=0)) == 10


def test_build_splits_applies_holdout_then_subset():
    full = build_splits(DataHparams(val_fraction=0.1))
    half = build_splits(DataHparams(val_fraction=0.1, subset_fraction=0.5, subset_seed=1))
    assert len(full.train) + len(full.val) + len(full.test) == 1797 and len(full.test) == 450  # 25%, per class
    assert len(half.val) == len(full.val) and len(half.train) == -(-len(full.train) // 2)
    rows = {tuple(r.tolist()) for r in full.train.tensors[0].flatten(1)}
    assert all(tuple(r.tolist()) in rows for r in half.train.tensors[0].flatten(1))  # a subset of train
    assert torch.equal(half.test.tensors[1], full.test.tensors[1])  # test split untouched


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    return torch.cat([y for _, y in loader])


def test_tensor_loader_order_is_a_function_of_seed_and_epoch():
    ds = TensorDataset(torch.arange(50).float().unsqueeze(1), torch.arange(50))
    loader = make_loader(ds, 8, shuffle=True, order_seed=5)
    e1, e1_again, e2 = _epoch(loader, 1), _epoch(loader, 1), _epoch(loader, 2)
    assert sorted(e1.tolist()) == list(range(50))
    assert torch.equal(e1, e1_again) and not torch.equal(e1, e2)
    assert len(loader) == 7 and len(make_loader(ds, 8, shuffle=True, drop_last=True)) == 6


def test_sharded_ranks_together_see_the_single_process_batches():
    ds = TensorDataset(torch.arange(48).float().unsqueeze(1), torch.arange(48))
    single = make_loader(ds, 8, shuffle=True, order_seed=1)
    ranks = [make_loader(ds, 8, shuffle=True, order_seed=1, rank=r, world_size=2) for r in range(2)]
    for a, b0, b1 in zip(single, *ranks):
        assert torch.equal(a[1], torch.cat([b0[1], b1[1]]))


class RandomCrop(Dataset):
    """A stand-in for a torchvision dataset with a random transform drawing from the global RNG."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int):
        return torch.rand(3) + i, i


def test_augmentation_depends_only_on_seed_epoch_and_sample():
    loader = make_loader(RandomCrop(), 4, shuffle=True, order_seed=0, aug_seed=9)
    loader.set_epoch(1)
    first = {int(i): x for xs, ys in loader for x, i in zip(xs, ys)}
    torch.manual_seed(12345)  # the global RNG must not matter
    loader.set_epoch(1)
    again = {int(i): x for xs, ys in loader for x, i in zip(xs, ys)}
    assert all(torch.equal(first[i], again[i]) for i in first)
    loader.set_epoch(2)
    other = {int(i): x for xs, ys in loader for x, i in zip(xs, ys)}
    assert not any(torch.equal(first[i], other[i]) for i in first)


@pytest.mark.parametrize("parts", [(1, 2), (1, 2, 3), (0,)])
def test_mix_seed_is_stable_and_order_sensitive(parts):
    assert mix_seed(*parts) == mix_seed(*parts) and 0 <= mix_seed(*parts) < 2**63
    if len(parts) > 1:
        assert mix_seed(*parts) != mix_seed(*reversed(parts))
