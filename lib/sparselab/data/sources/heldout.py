"""Downstream tasks built from the digits images a ``digits`` upstream never trained on.

Why: transferring a network pretrained on scikit-learn's digits needs downstream tasks it has not
seen, and offline. ``digits_clutter`` keeps the ten digit classes but shifts the domain (a
distractor digit and heavy noise on every image); ``digits_loops`` keeps the images but changes the
label space (how many closed loops the digit has: 0, 1 or 2). Measured in the default config,
transfer from a digits upstream beats training from scratch on these two tasks, while it did not on
the procedural ``shapes``/``gratings`` or on rendered letters: plain 8x8 digits are easy to learn
from scratch even with 5 images per class, so the tasks must be ones the upstream's features help.

Both tasks use exactly the test split of the ``digits`` source with the same ``test_fraction`` and
``split_seed`` (:func:`heldout_indices`), so no image of a digits upstream's training split (nor of
its validation hold-out, which is carved out of that training split) ever appears in them. From those
held-out images a seeded per-class draw of ``train_per_class`` images (default 10) per task class
is the training split; the rest is the test split.

``digits_clutter``: each held-out image ``x`` (in [0, 1], 1x8x8) becomes
``clamp(x + 0.45 * roll(d, (3, 3)) + 0.35 * N(0, 1), 0, 1.2)``, where ``d`` is another held-out
image (a distractor digit shifted diagonally, wrapping around). Distractors and noise come from a
generator seeded with ``split_seed * 1000 + 7``: a random permutation ``p`` of the held-out images,
the distractor of ``p[i]`` being ``p[i + 1]`` (cyclically, so never the image itself), then the
noise. The per-class train draw uses its own generator seeded with ``split_seed * 1000 + 3``.

``digits_loops``: the held-out images unchanged, labelled by :data:`LOOPS` of their digit.

Images are resized bilinearly to ``image_size`` and normalised with digits' mean/std, grey
replicated to ``channels`` (1 or 3), exactly like the ``digits`` source; no augmentation, so train
and train_eval are the same tensors.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ...config import DataHparams
from ..registry import DatasetInfo, SourceSplits, register_source
from .digits import MEAN, NATIVE_SIZE, STD, _transform, load_digits_tensors, stratified_split

__all__ = ["LOOPS", "TRAIN_PER_CLASS", "clutter", "heldout_indices", "per_class_train_split"]

# Closed loops of the digits 0..9 (a closed 4 has one): 3 classes, 0, 1 or 2 loops.
LOOPS = (1, 0, 0, 0, 1, 0, 1, 0, 2, 1)
TRAIN_PER_CLASS = 10
DISTRACTOR_WEIGHT = 0.45
DISTRACTOR_SHIFT = (3, 3)
NOISE_STD = 0.35
CLAMP_MAX = 1.2
_CLUTTER_STREAM = 7  # generator seed split_seed * 1000 + 7: distractor permutation, then noise
_TRAIN_STREAM = 3  # generator seed split_seed * 1000 + 3: the per-class training draw


def _stream(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1000 + stream)


def heldout_indices(labels: torch.Tensor, test_fraction: float, split_seed: int) -> torch.Tensor:
    """Sorted indices of the digits images outside the ``digits`` source's training split.

    The same call (``stratified_split``, same arguments) as the ``digits`` source's test split.
    """
    if test_fraction <= 0:
        raise ValueError("test_fraction must be > 0: the held-out digits tasks are built from digits' test split")
    return stratified_split(labels, test_fraction, split_seed)[1]


def clutter(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Each image plus a diagonally shifted other image of the set and Gaussian noise (see module doc)."""
    n = len(images)
    if n < 2:
        raise ValueError("clutter needs at least two images (a distractor must be another image)")
    g = _stream(seed, _CLUTTER_STREAM)
    perm = torch.randperm(n, generator=g)
    distractor = torch.empty(n, dtype=torch.int64)
    distractor[perm] = perm.roll(-1)  # image perm[i] gets perm[i + 1]: a derangement
    d = images[distractor].roll(DISTRACTOR_SHIFT, dims=(-2, -1))
    noise = torch.randn(images.shape, generator=g)
    return (images + DISTRACTOR_WEIGHT * d + NOISE_STD * noise).clamp(0.0, CLAMP_MAX)


def per_class_train_split(labels: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train, test) positions: ``per_class`` seeded picks of every class train, the rest test."""
    g = _stream(seed, _TRAIN_STREAM)
    train = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) < per_class + 1:
            raise ValueError(
                f"class {c} has {len(members)} held-out images: train_per_class={per_class} leaves none to test "
                f"(at most {len(members) - 1}; raise test_fraction or lower train_per_class)"
            )
        train.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    train_idx = torch.cat(train).sort().values
    is_train = torch.zeros(len(labels), dtype=torch.bool)
    is_train[train_idx] = True
    return train_idx, torch.nonzero(~is_train).flatten()


@register_source("digits_clutter")
@register_source("digits_loops")
def build_heldout(hp: DataHparams) -> SourceSplits:
    size = int(hp.image_size or NATIVE_SIZE)
    channels = int(hp.channels or 1)
    per_class = int(hp.train_per_class or TRAIN_PER_CLASS)
    images, digit_labels = load_digits_tensors()
    held = heldout_indices(digit_labels, hp.test_fraction, hp.split_seed)
    x, digits = images[held], digit_labels[held]
    if hp.source == "digits_clutter":
        x, y, classes = clutter(x, hp.split_seed), digits, 10
    else:
        y, classes = torch.tensor(LOOPS, dtype=torch.int64)[digits], 3
    train_idx, test_idx = per_class_train_split(y, per_class, hp.split_seed)
    x = _transform(x, size, channels)
    train = TensorDataset(x[train_idx], y[train_idx])
    info = DatasetInfo(
        name=hp.source,
        num_classes=classes,
        input_shape=(channels, size, size),
        mean=(MEAN,) * channels,
        std=(STD,) * channels,
    )
    # No augmentation: train and train_eval are the same tensors.
    return SourceSplits(info=info, train=train, train_eval=train, test=TensorDataset(x[test_idx], y[test_idx]))
