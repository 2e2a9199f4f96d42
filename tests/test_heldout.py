"""Held-out digits tasks (sparselab.data.sources.heldout): only images a digits upstream never trained on."""

from __future__ import annotations

import pytest
import torch

from sparselab.config import DataHparams, HparamsError
from sparselab.config.roots import check_dataset_root
from sparselab.data import build_splits
from sparselab.data.registry import build_source
from sparselab.data.sources.digits import MEAN, STD, load_digits_tensors, stratified_split
from sparselab.data.sources.heldout import LOOPS, clutter, heldout_indices, per_class_train_split

SOURCES = (("digits_clutter", 10), ("digits_loops", 3))


def _denorm(x: torch.Tensor) -> torch.Tensor:
    return x * STD + MEAN


def _rows(x: torch.Tensor) -> torch.Tensor:
    """Images as rows of rounded pixels (for set-like comparisons after the normalisation round trip)."""
    return torch.round(_denorm(x).flatten(1) * 1e4).to(torch.int64)


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_digits_tensors()


@pytest.mark.parametrize("fraction,seed", [(0.25, 0), (0.4, 3)])
def test_heldout_indices_are_exactly_the_digits_test_split(digits, fraction, seed) -> None:  # type: ignore[no-untyped-def]
    images, labels = digits
    held = heldout_indices(labels, fraction, seed)
    digits_train, digits_test = stratified_split(labels, fraction, seed)
    assert torch.equal(held, digits_test)
    assert not set(held.tolist()) & set(digits_train.tolist())
    # and it is the test split the digits source itself builds (pixels, not just indices)
    src = build_source(DataHparams(source="digits", test_fraction=fraction, split_seed=seed))
    assert torch.allclose(_denorm(src.test.tensors[0]), images[held], atol=1e-5)
    with pytest.raises(ValueError, match="test_fraction"):
        heldout_indices(labels, 0.0, seed)


def test_loops_images_are_the_heldout_images_with_loop_labels(digits) -> None:  # type: ignore[no-untyped-def]
    images, labels = digits
    held = heldout_indices(labels, 0.25, 0)
    s = build_source(DataHparams(source="digits_loops"))
    x = torch.cat([s.train.tensors[0], s.test.tensors[0]])
    assert len(x) == len(held)
    # as a multiset, the task's images are exactly the held-out digits images, untouched
    got = sorted(map(tuple, _rows(x).tolist()))
    assert got == sorted(map(tuple, torch.round(images[held].flatten(1) * 1e4).to(torch.int64).tolist()))
    assert got != sorted(map(tuple, torch.round(images[: len(held)].flatten(1) * 1e4).to(torch.int64).tolist()))
    # position by position: train/test position k is digits image held[k], labelled LOOPS[its digit]
    tr, te = per_class_train_split(torch.tensor(LOOPS)[labels[held]], 10, 0)
    for split, pos in ((s.train, tr), (s.test, te)):
        assert torch.allclose(_denorm(split.tensors[0]), images[held[pos]], atol=1e-5)
        assert split.tensors[1].tolist() == [LOOPS[int(d)] for d in labels[held[pos]]]
    assert LOOPS == (1, 0, 0, 0, 1, 0, 1, 0, 2, 1)
    assert torch.bincount(s.test.tensors[1]).tolist()[2] == int((labels[held] == 8).sum()) - 10


def test_clutter_is_the_heldout_images_plus_distractor_and_noise(digits) -> None:  # type: ignore[no-untyped-def]
    images, labels = digits
    held = heldout_indices(labels, 0.25, 0)
    y = labels[held]
    tr, te = per_class_train_split(y, 10, 0)
    s = build_source(DataHparams(source="digits_clutter"))
    assert len(s.train) + len(s.test) == len(held)
    assert torch.equal(s.train.tensors[1], y[tr]) and torch.equal(s.test.tensors[1], y[te])
    expected = clutter(images[held], 0)
    assert torch.allclose(_denorm(s.train.tensors[0]), expected[tr], atol=1e-5)
    assert torch.allclose(_denorm(s.test.tensors[0]), expected[te], atol=1e-5)
    # re-derive the recipe independently: one generator (split_seed * 1000 + 7), permutation then noise
    g = torch.Generator().manual_seed(7)
    perm = torch.randperm(len(held), generator=g)
    noise = torch.randn(images[held].shape, generator=g)
    x = images[held]
    i = int(perm[5])
    d = x[int(perm[6])].roll((3, 3), dims=(-2, -1))
    assert torch.allclose(expected[i], (x[i] + 0.45 * d + 0.35 * noise[i]).clamp(0, 1.2))
    # distractors are other images; the result differs from the clean image and stays in range
    assert float(expected.min()) >= 0.0 and float(expected.max()) == pytest.approx(1.2)
    assert (expected - x).abs().mean() > 0.1


@pytest.mark.parametrize("source,classes", SOURCES)
def test_per_class_counts_disjoint_and_covering(source, classes, digits) -> None:  # type: ignore[no-untyped-def]
    _, labels = digits
    held = heldout_indices(labels, 0.25, 0)
    for per_class in (None, 5, 43):
        s = build_source(DataHparams(source=source, train_per_class=per_class))
        assert s.info.num_classes == classes and s.info.name == source
        assert torch.bincount(s.train.tensors[1], minlength=classes).tolist() == [per_class or 10] * classes
        assert s.train is s.train_eval
        assert len(s.train) + len(s.test) == len(held)
        assert set(torch.unique(s.test.tensors[1]).tolist()) == set(range(classes))
    y = labels[held] if source == "digits_clutter" else torch.tensor(LOOPS)[labels[held]]
    tr, te = per_class_train_split(y, 10, 0)
    assert not set(tr.tolist()) & set(te.tolist())
    assert sorted(tr.tolist() + te.tolist()) == list(range(len(held)))
    with pytest.raises(ValueError, match="train_per_class=44"):
        build_source(DataHparams(source=source, train_per_class=44))


@pytest.mark.parametrize("source,classes", SOURCES)
def test_deterministic_seeded_and_shaped(source, classes) -> None:  # type: ignore[no-untyped-def]
    a = build_splits(DataHparams(source=source))
    b = build_splits(DataHparams(source=source))
    assert a.info.input_shape == (1, 8, 8) and a.info.mean == (MEAN,) and a.info.std == (STD,)
    for sa, sb in ((a.train, b.train), (a.test, b.test)):
        assert all(torch.equal(u, v) for u, v in zip(sa.tensors, sb.tensors))
    other = build_splits(DataHparams(source=source, split_seed=1))
    assert not torch.equal(a.train.tensors[0], other.train.tensors[0])
    big = build_splits(DataHparams(source=source, image_size=16, channels=3))
    assert big.info.input_shape == (3, 16, 16) and big.info.mean == (MEAN,) * 3
    assert big.train.tensors[0].shape == (10 * classes, 3, 16, 16)
    assert big.test.tensors[0].shape[1:] == (3, 16, 16)
    assert torch.equal(big.train.tensors[0][:, 0], big.train.tensors[0][:, 2])
    check_dataset_root(source, None, key=f"datasets.{source}.root")  # no root needed


def test_validation() -> None:
    with pytest.raises(HparamsError, match="train_per_class: only for"):
        DataHparams.from_dict({"source": "digits", "train_per_class": 5}, path="datasets.d")
    with pytest.raises(HparamsError, match="train_per_class: only for"):
        DataHparams.from_dict({"source": "shapes", "train_per_class": 5}, path="datasets.s")
    with pytest.raises(HparamsError, match=">= 1"):
        DataHparams.from_dict({"source": "digits_loops", "train_per_class": 0}, path="datasets.l")
    with pytest.raises(HparamsError, match="test_fraction"):
        DataHparams.from_dict({"source": "digits_clutter", "test_fraction": 0.0}, path="datasets.c")
    with pytest.raises(HparamsError, match="test_fraction"):
        DataHparams.from_dict({"source": "shapes", "test_fraction": 0.3}, path="datasets.s")
    hp = DataHparams.from_dict(
        {"source": "digits_clutter", "test_fraction": 0.4, "split_seed": 2, "train_per_class": 3}
    )
    assert (hp.test_fraction, hp.split_seed, hp.train_per_class) == (0.4, 2, 3)
    assert DataHparams.from_dict({"source": "digits_loops"}).train_per_class is None
