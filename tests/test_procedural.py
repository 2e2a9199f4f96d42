"""Procedural image tasks (sparselab.data.sources.procedural): deterministic, balanced, learnable."""

from __future__ import annotations

import pytest
import torch

from sparselab.config import DataHparams
from sparselab.data import build_splits
from sparselab.data.sources.procedural import SHAPES

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: thousands of tiny ops


def test_shapes_and_gratings_are_balanced_deterministic_and_digits_shaped() -> None:
    for source, classes in (("shapes", len(SHAPES)), ("gratings", 6)):
        a = build_splits(DataHparams(source=source))
        b = build_splits(DataHparams(source=source))
        assert a.info.num_classes == classes and a.info.input_shape == (1, 8, 8)
        xa, ya = a.train.tensors
        assert torch.equal(xa, b.train.tensors[0]) and torch.bincount(ya).tolist() == [20] * classes
        assert torch.bincount(a.test.tensors[1]).tolist() == [60] * classes
        other = build_splits(DataHparams(source=source, split_seed=1))
        assert not torch.equal(xa, other.train.tensors[0])
        assert build_splits(DataHparams(source=source, image_size=16, channels=3)).info.input_shape == (3, 16, 16)


def test_classes_differ_in_structure_a_nearest_centroid_beats_chance() -> None:
    # real structure: even class-mean templates separate the test images well above chance
    for source, classes in (("shapes", len(SHAPES)), ("gratings", 6)):
        s = build_splits(DataHparams(source=source, image_size=16))
        x, y = s.train.tensors
        xt, yt = s.test.tensors
        centroids = torch.stack([x[y == c].mean(0).flatten() for c in range(classes)])
        pred = torch.cdist(xt.flatten(1), centroids).argmin(1)
        assert float((pred == yt).float().mean()) > 2.0 / classes, source
